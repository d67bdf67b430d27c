"""Command-line interface ``crystal-atomate``; its commands load on first use (see :mod:`.app`)."""

from crystal_atomate.cli.app import app

__all__ = ["app"]
