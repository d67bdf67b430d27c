"""A Textual job browser over the shared database (``crystal-atomate tui``)."""

from crystal_atomate.tui.app import JobBrowser

__all__ = ["JobBrowser"]
