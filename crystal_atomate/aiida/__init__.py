"""AiiDA plugin for CRYSTAL: CalcJobs, parser, restart work chain, and jobflow executor/flow modes.

Importing this package does not load an AiiDA profile; the submodules import ``aiida`` itself, so
installing the ``aiida`` extra is needed only by those who use them.
"""
