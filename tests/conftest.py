"""Shared fixtures. The recorded runs are required: a missing folder fails the run, never skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystal_atomate.testing.reference import ReferenceDataMissing, reference_dir


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    """The recorded runs: $CRYSTAL_ATOMATE_REFERENCE_DIR or crystal_atomate/testing/recordings."""
    try:
        return reference_dir()
    except ReferenceDataMissing as exc:
        pytest.fail(str(exc), pytrace=False)
