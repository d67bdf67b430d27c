"""``python -m crystal_atomate.cli``: the ``crystal-atomate`` command."""

from crystal_atomate.cli import app

app()
