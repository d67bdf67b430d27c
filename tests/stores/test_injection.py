"""Hostile field names and values cannot change the schema or read other tables."""

from __future__ import annotations

import re
import sqlite3

import pytest

from crystal_atomate.stores import CrystalMathJobStore

HOSTILE = [
    "x'); DROP TABLE jobs; --",
    "a\"; DROP TABLE jobs; --",
    "a') OR 1=1 --",
    "name' UNION SELECT sql FROM sqlite_master --",
    "$.a",
    "a\\\"]",
    "a[0]",
    "a\"}",
    "a;b",
    "a--b",
    "x') , json_extract(doc, '$",
    "' || (SELECT group_concat(name) FROM jobs) || '",
]


@pytest.fixture()
def store(tmp_path):
    s = CrystalMathJobStore(tmp_path / "h.db")
    s.connect()
    s.mark_job_state("secret-uuid", "RUNNING", name="secret-ui-job")
    s.docs_store.update(
        [{"uuid": "u1", "index": 1, "name": "ok", "output": {"v": 1}}], key=["uuid", "index"]
    )
    return s


def schema(store) -> list:
    conn = sqlite3.connect(store.db_file)
    return conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_sequence' ORDER BY name"
    ).fetchall()


@pytest.mark.parametrize("field", HOSTILE)
def test_hostile_field_names(store, field):
    before = schema(store)
    docs = store.docs_store
    for call in (
        lambda: list(docs.query({field: 1})),
        lambda: list(docs.query({"name": {"$in": [field]}}, properties=[field], sort={field: 1})),
        lambda: docs.count({field: {"$exists": True}}),
        lambda: docs.distinct(field),
        lambda: docs.ensure_index(field),
        lambda: docs.update({"uuid": "u2", "index": 1, field: "v"}, key=["uuid", "index"]),
        lambda: docs.remove_docs({field: "nothing"}),
    ):
        try:
            result = call()
        except ValueError:  # InvalidFieldError, or UnsupportedOperatorError for "$..."
            continue
        assert "secret" not in repr(result)
    after = schema(store)
    assert set(before) <= set(after)
    # "a--b" is a plain field name (think "mp-149"), so ensure_index may index it; nothing else.
    assert all(e[1].startswith("ix_jobflow_docs_outputs_") for e in set(after) - set(before))
    assert docs.count({"uuid": "u1"}) == 1
    names = [r[0] for r in sqlite3.connect(store.db_file).execute("SELECT name FROM jobs")]
    assert names[0] == "secret-ui-job" and all(n.startswith(("jobflow-", "ok")) for n in names[1:])


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_round_trip(store, value):
    before = schema(store)
    docs = store.docs_store
    docs.update({"uuid": value, "index": 1, "name": value, "output": {"v": value}})
    assert docs.query_one({"uuid": value})["output"]["v"] == value
    assert docs.count({"name": {"$regex": "^" + re.escape(value)}}) == 1
    assert schema(store) == before
    assert docs.count() == 2


def test_collection_name_is_validated(tmp_path):
    from crystal_atomate.stores import SQLiteStore

    with pytest.raises(ValueError, match="collection_name"):
        SQLiteStore(tmp_path / "x.db", "jobs; DROP TABLE jobs")
