"""Stores for jobflow results: a maggma Store over SQLite, and the JobStore the UI shares."""

from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.sqlite_db import DatabaseLockedError
from crystal_atomate.stores.sqlite_store import SQLiteStore

__all__ = ["CrystalMathJobStore", "DatabaseLockedError", "SQLiteStore"]
