"""Command-line interface. Importing the command modules registers their commands on ``app``."""

from crystal_atomate.cli.app import app
from crystal_atomate.cli import parse as _parse  # noqa: F401  (registers the command)
from crystal_atomate.cli import mp as _mp  # noqa: F401  (registers the command)
from crystal_atomate.cli import jobs as _jobs  # noqa: F401  (registers the commands)
from crystal_atomate.cli import engines as _engines  # noqa: F401  (registers the commands)
from crystal_atomate.cli import highthroughput as _highthroughput  # noqa: F401  (registers the commands)
from crystal_atomate.cli import tui as _tui  # noqa: F401  (registers the command)
from crystal_atomate.cli import aiida as _aiida  # noqa: F401  (registers the commands)

__all__ = ["app"]
