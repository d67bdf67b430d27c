"""CRYSTAL23 workflows for jobflow, atomate2, FireWorks, jobflow-remote and AiiDA."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use (PEP 562).

    ``importlib.metadata`` scans every installed distribution; doing that on import would cost
    each ``crystal-atomate`` command a tenth of a second before it starts.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crystal-atomate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
