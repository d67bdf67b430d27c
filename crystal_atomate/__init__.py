"""crystal_atomate: CRYSTAL23 workflows for jobflow, atomate2, FireWorks, jobflow-remote and AiiDA."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crystal-atomate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
