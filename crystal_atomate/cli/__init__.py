"""Command-line interface. Importing the command modules registers their commands on ``app``."""

from crystal_atomate.cli.app import app

__all__ = ["app"]
