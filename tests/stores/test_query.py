"""Hostile and large filters through the real SQLiteStore: each works as on MongoDB or raises
:class:`InvalidQuery` with a clear message, never a bare sqlite3/Python error."""

from __future__ import annotations

import re

import pytest
from maggma.stores import MemoryStore

from crystal_atomate.stores.query import (
    MAX_QUERY_DEPTH,
    InvalidFieldError,
    InvalidQuery,
    UnsupportedOperatorError,
    validate_limit_skip,
)
from crystal_atomate.stores.sqlite_store import SQLiteStore

DOCS = [{"task_id": i, "n": i, "s": f"x{i}", "tags": ["a", i], "flag": i % 2 == 0,
         "sub": {"k": i % 3}, "maybe": None if i % 4 == 0 else i} for i in range(40)]


@pytest.fixture()
def stores(tmp_path):
    sqlite = SQLiteStore(tmp_path / "q.db", "q", key="task_id")
    memory = MemoryStore("q", key="task_id")
    for store in (sqlite, memory):
        store.connect()
        store.update([dict(d) for d in DOCS])
    yield sqlite, memory
    sqlite.close()


def _same(stores, criteria) -> int:
    sqlite, memory = stores
    found = sorted(d["task_id"] for d in sqlite.query(criteria))
    assert found == sorted(d["task_id"] for d in memory.query(criteria)), criteria
    return len(found)


def test_thousand_clause_or_and_mixed_in_work_as_on_mongodb(stores) -> None:
    assert _same(stores, {"$or": [{"n": i} for i in range(0, 2000, 3)]}) == 14
    assert (
        _same(
            stores, {"$or": [{"n": {"$eq": i}} for i in range(1000)] + [{"s": "x1"}, {"tags": 39}]}
        )
        == 40
    )
    assert _same(stores, {"$nor": [{"n": i} for i in range(5, 1000)]}) == 5
    assert _same(stores, {"s": {"$in": [f"x{i}" for i in range(0, 100_000, 7)]}}) == 6
    mixed = [i if i % 2 else str(i) for i in range(1000)] + [None, True, {"k": 1}]
    assert _same(stores, {"n": {"$in": mixed}}) == 20
    assert _same(stores, {"s": {"$in": mixed + ["x4", "x5"]}}) == 2
    assert _same(stores, {"maybe": {"$in": mixed}}) == 10 + 20  # None matches the null values
    assert _same(stores, {"flag": {"$in": mixed}}) == 20
    assert _same(stores, {"sub": {"$in": mixed}}) == 13
    assert _same(stores, {"tags": {"$in": mixed}}) == 20  # array field: any element matches
    assert _same(stores, {"n": {"$nin": mixed}}) == 20
    assert (
        _same(stores, {"$and": [{"n": {"$gte": i}} for i in range(1000)] + [{"n": {"$lt": 1001}}]})
        == 0
    )
    assert _same(stores, {"n": {"$all": [5] * 1500}}) == 1


def test_deep_same_operator_nesting_is_flattened(stores) -> None:
    sqlite, _ = stores
    query: dict = {"n": 3}
    for _ in range(43):
        query = {"$and": [query]}
    assert sqlite.count(query) == 1
    ors: dict = {"n": 3}
    for _ in range(45):
        ors = {"$or": [ors, {"n": 7}]}
    assert sqlite.count(ors) == 2
    inner: dict = {"$gt": 3}
    for _ in range(14):
        inner = {"$not": inner}
    assert sqlite.count({"n": inner}) == 36  # 14 negations: n > 3
    assert sqlite.count({"n": {"$not": inner}}) == 4


def test_too_deep_filters_are_invalid_queries(stores) -> None:
    sqlite, _ = stores
    deep: dict = {"n": 3}
    for _ in range(5000):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidQuery, match=f"more than {MAX_QUERY_DEPTH} levels"):
        sqlite.count(deep)
    alternating: dict = {"tags": "a"}
    for i in range(40):
        alternating = {("$and", "$or", "$nor")[i % 3]: [alternating, {"n": {"$gte": 0}}]}
    with pytest.raises(InvalidQuery, match="nested too deeply for SQLite .parser stack overflow"):
        sqlite.count(alternating)


@pytest.mark.parametrize(
    ("criteria", "error", "message"),
    [
        ({"s": {"$regex": "("}}, InvalidQuery, "invalid \\$regex '\\(': missing \\)"),
        ({"s": {"$regex": "[a-", "$options": "i"}}, InvalidQuery, "invalid \\$regex"),
        ({"s": "\ud800"}, InvalidQuery, "not valid UTF-8"),
        ({"s": {"$in": ["ok", "\udfff"]}}, InvalidQuery, "not valid UTF-8"),
        ({"\ud800": 1}, InvalidFieldError, "not valid UTF-8"),
        ({"n": 2**70}, InvalidQuery, "outside the 64-bit range"),
        ({"n": {"$in": [1, "a", -(2**64)]}}, InvalidQuery, "outside the 64-bit range"),
        ({"n": {"$gt": 2**63}}, InvalidQuery, "outside the 64-bit range"),
        ({"sub": {1: 1}}, InvalidQuery, "keys must be strings, got 1"),
        ({1: 1}, InvalidQuery, "keys must be strings, got 1"),
        ({"n": {"$in": [{2: "x"}, "a"]}}, InvalidQuery, "keys must be strings, got 2"),
        ({"$or": [1, 2]}, InvalidQuery, "needs a non-empty list of documents"),
        ({"n": {"$where": "1"}}, UnsupportedOperatorError, "\\$where"),
    ],
)
def test_hostile_values_are_invalid_queries(stores, criteria, error, message) -> None:
    sqlite, _ = stores
    with pytest.raises(error, match=message):
        sqlite.count(criteria)
    assert sqlite.count({"n": 2**63 - 1}) == 0 and sqlite.count({"s": re.compile("^x1$")}) == 1


def test_limit_and_skip_validation() -> None:
    assert validate_limit_skip(5, None) == (5, 0) and validate_limit_skip(0, 3) == (0, 3)
    for limit, skip in (("5", 0), (1.5, 0), (True, 0), (-1, 0), (0, "x"), (2**64, 0)):
        with pytest.raises(InvalidQuery, match="must be a non-negative integer"):
            validate_limit_skip(limit, skip)
    assert issubclass(InvalidQuery, ValueError) and issubclass(
        UnsupportedOperatorError, InvalidQuery
    )
