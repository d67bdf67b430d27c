"""MongoDB query documents compiled to SQL over JSON documents stored in SQLite.

jobflow, atomate2 and maggma users write Mongo filters; this module turns them into a ``WHERE``
clause over a ``doc`` column holding JSON text, so the same filters work on the file the terminal
UI shares. Three rules keep it safe and fast:

* a field name is split on dots and every part is validated (no double quote, backslash,
  control character, empty part or leading ``$``); the resulting JSON path is written as a SQL
  string literal with single quotes doubled, so it can neither end the literal nor the JSON
  label, and its text is the same as in the expression indexes, which SQLite can then use;
* every value is a bound parameter;
* an operator we do not implement raises :class:`UnsupportedOperatorError` naming it, so a filter
  is never silently turned into "match nothing".

Hostile or merely large filters never reach SQLite as something it would choke on: every problem is
an :class:`InvalidQuery` naming what to change (nesting deeper than :data:`MAX_QUERY_DEPTH`, SQL too
deeply nested for SQLite's parser, an invalid ``$regex``, a string that is not valid UTF-8, an
integer outside 64 bits, a non-string key, a non-integer ``limit``). Large ``$in`` lists of mixed
types are bound as one JSON array read with ``json_each``, and long ``$or``/``$and`` lists are
joined as a balanced tree, so thousands of clauses work as on MongoDB.

Mongo's array semantics (a scalar criterion matches an array holding it, ``a.b`` reaches into an
array of sub-documents) cost a scan, so they are only compiled for paths known to have held an
array in this collection (the store records those paths on write); every other path compiles to
a plain, indexable comparison.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "DATETIME_TAG",
    "MAX_QUERY_DEPTH",
    "Compiler",
    "check_shape",
    "check_value",
    "InvalidFieldError",
    "InvalidQuery",
    "UnsupportedOperatorError",
    "encode_scalar",
    "path_literal",
    "split_field",
    "validate_limit_skip",
    "decode_document",
]

DATETIME_TAG = "\x01datetime:"
FLOAT_TAG = "\x01float:"
_FORBIDDEN = re.compile(r'["\\\x00-\x1f\x7f]')
_NUMERIC = ("integer", "real")
#: Containers (documents, lists) a filter may nest, as MongoDB limits documents to 100 levels.
MAX_QUERY_DEPTH = 100
#: Parenthesis depth above which compiled SQL is test-prepared on an in-memory database first
#: (SQLite's parser stack overflows somewhere past 40, depending on the expressions).
_CHECKED_NESTING = 30
_INT64 = (-(2**63), 2**63 - 1)
_LOGICAL = ("$and", "$or", "$nor")
#: ``$or``/``$and`` lists longer than this are joined as a balanced tree (SQLite's expression
#: depth limit is 1000, and a flat chain of N terms is N deep).
_CHAIN = 8
#: ``$in`` lists up to this length are bound value by value; longer ones as one JSON array.
_INLINE_IN = 1000


class InvalidQuery(ValueError):
    """A filter (or ``limit``/``skip``) this store cannot run as written; the message says why."""


class UnsupportedOperatorError(InvalidQuery):
    """A Mongo operator this store does not implement; the message names it."""

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"Unsupported MongoDB query operator {operator!r} in SQLiteStore; supported: "
            "$eq $ne $in $nin $gt $gte $lt $lte $exists $regex $options $not $size $all "
            "$and $or $nor"
        )
        self.operator = operator


class InvalidFieldError(InvalidQuery):
    """A field name that cannot be expressed as a safe JSON path."""


def validate_limit_skip(limit: Any, skip: Any) -> tuple[int, int]:
    """``limit`` and ``skip`` as the non-negative integers SQL needs (``limit`` 0: no limit).

    Parameters
    ----------
    limit, skip
        As given by the caller (``None`` counts as 0).

    Returns
    -------
    tuple of int
        ``(limit, skip)``.

    Raises
    ------
    InvalidQuery
        For anything but a non-negative 64-bit integer (a string ``"5"`` included: MongoDB
        refuses it too).
    """
    values = []
    for name, value in (("limit", limit), ("skip", skip)):
        value = 0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64[1]:
            raise InvalidQuery(f"{name} must be a non-negative integer, got {value!r}")
        values.append(value)
    return values[0], values[1]


def check_shape(criteria: Any) -> None:
    """Refuse filters nested too deeply or with a non-string key, before any recursion.

    "Too deeply" is more than :data:`MAX_QUERY_DEPTH` documents and lists.

    Raises
    ------
    InvalidQuery
        Naming what was wrong.
    """
    stack: list[tuple[Any, int]] = [(criteria, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_QUERY_DEPTH:
            raise InvalidQuery(
                f"the filter nests more than {MAX_QUERY_DEPTH} levels of documents and lists"
            )
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidQuery(f"filter keys must be strings, got {key!r}")
                stack.append((item, depth + 1))
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((item, depth + 1) for item in value)


def check_sql(where: str, params: list[Any]) -> None:
    """Refuse a compiled filter SQLite's parser cannot take (parser stack, expression depth).

    Only deeply parenthesised SQL is test-prepared, on a throw-away in-memory database, so
    ordinary filters cost nothing extra.

    Raises
    ------
    InvalidQuery
        With SQLite's reason and what to change.
    """
    if _nesting(where) <= _CHECKED_NESTING:
        return
    probe = sqlite3.connect(":memory:")
    try:
        probe.create_function("crystal_regexp", 3, lambda *_: 0, deterministic=True)
        probe.execute(f"SELECT 1 FROM (SELECT NULL AS doc) WHERE {where}", params).fetchall()
    except sqlite3.OperationalError as exc:
        raise InvalidQuery(f"the filter is nested too deeply for SQLite ({exc}); "
                           "flatten nested $and/$or/$nor/$not") from None
    finally:
        probe.close()


def _nesting(sql: str) -> int:
    """Deepest parenthesis nesting of ``sql`` outside its single-quoted literals."""
    depth = deepest = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif not quoted and char == ")":
            depth -= 1
    return deepest


def split_field(name: str) -> tuple[str, ...]:
    """Split a dotted Mongo field name and refuse parts that could alter a JSON path."""
    if not isinstance(name, str) or not name:
        raise InvalidFieldError(f"field name must be a non-empty string, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFieldError(f"field name {name!r} is not valid UTF-8") from None
    parts = tuple(name.split("."))
    for part in parts:
        if not part or part.startswith("$") or _FORBIDDEN.search(part):
            raise InvalidFieldError(f"invalid field name {name!r}")
    return parts


def path_literal(parts: Iterable[str], index_at: Iterable[int] = ()) -> str:
    """Quote a validated field as a SQL string literal holding the JSON path ``$."a"."b"``.

    Parts were checked by :func:`split_field` (no double quote, backslash or control character),
    so inside the double-quoted JSON labels nothing can end the label; single quotes are doubled,
    so nothing can end the SQL literal either. The literal text is deterministic, which is what
    lets SQLite match it against expression indexes built from the same function.
    """
    idx = set(index_at)
    path = "$" + "".join(f"[{p}]" if i in idx else f'."{p}"' for i, p in enumerate(parts))
    return "'" + path.replace("'", "''") + "'"


def encode_scalar(value: Any) -> Any:
    """Map the scalars JSON cannot hold (datetimes, NaN/inf) to tagged strings that sort right."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return DATETIME_TAG + value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, float) and not math.isfinite(value):
        return FLOAT_TAG + repr(value)
    return value


def decode_scalar(value: str) -> Any:
    """Inverse of :func:`encode_scalar` for tagged strings."""
    if value.startswith(DATETIME_TAG):
        return datetime.strptime(value[len(DATETIME_TAG) :], "%Y-%m-%dT%H:%M:%S.%f")
    if value.startswith(FLOAT_TAG):
        return float(value[len(FLOAT_TAG) :])
    return value


def _decode_tags(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode_tags(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tags(v) for v in value]
    if isinstance(value, str) and value.startswith("\x01"):
        return decode_scalar(value)
    return value


def decode_document(text: str) -> Any:
    r"""Decode a stored document's JSON text back to Python, tagged scalars included.

    Parameters
    ----------
    text
        The ``doc`` column of a collection table.

    Returns
    -------
    Any
        The document; the tree is walked only when the text holds a tag (``\u0001`` escaped).
    """
    value = orjson.loads(text)
    return _decode_tags(value) if "\\u0001" in text else value


@dataclass
class _Ctx:
    """Where a path is evaluated: the document column, or one element of a ``json_each``.

    ``prefix`` is the dotted path of that element, used to look up nested known arrays.
    """

    base: str
    prefix: tuple[str, ...] = ()


@dataclass
class Compiler:
    """Compile one Mongo filter; ``array_paths`` are dotted paths that have held a list."""

    array_paths: frozenset[str] = frozenset()
    params: list[Any] = field(default_factory=list)
    _aliases: Iterable[int] = field(default_factory=lambda: itertools.count())

    def where(self, criteria: Mapping[str, Any] | None) -> str:
        """Compile ``criteria`` to an SQL boolean expression (``1`` for an empty filter)."""
        if not criteria:
            return "1"
        if not isinstance(criteria, Mapping):
            raise TypeError(f"criteria must be a dict, got {type(criteria).__name__}")
        check_shape(criteria)
        start = len(self.params)
        where = _join([self._clause(k, v, _Ctx("doc")) for k, v in criteria.items()], "AND")
        check_sql(where, self.params[start:])
        return where

    def _clause(self, key: str, value: Any, ctx: _Ctx) -> str:
        if key in _LOGICAL:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(d, Mapping) for d in value)
            ):
                raise InvalidQuery(f"{key} needs a non-empty list of documents")
            clauses = _flattened(key, value)
            if key != "$and":
                clauses = _equalities_as_in(clauses)
            subs = [_join([self._clause(k, v, ctx) for k, v in d.items()], "AND") if d else "1"
                    for d in clauses]
            joined = _join(subs, "AND" if key == "$and" else "OR")
            return f"NOT COALESCE(({joined}), 0)" if key == "$nor" else joined
        if key.startswith("$"):
            raise UnsupportedOperatorError(key)
        parts = split_field(key)
        if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            return self._operators(parts, value, ctx)
        if isinstance(value, re.Pattern):
            return self._field(
                parts, ctx, lambda v, t: self._regex(v, t, value.pattern, value.flags)
            )
        return self._field(parts, ctx, lambda v, t: self._eq(v, t, value))

    def _operators(self, parts: tuple[str, ...], ops: Mapping[str, Any], ctx: _Ctx) -> str:
        terms = []
        for op, arg in ops.items():
            if op == "$options":
                if "$regex" not in ops:
                    raise ValueError("$options without $regex")
                continue
            terms.append(self._operator(parts, op, arg, ops, ctx))
        return _join(terms, "AND")

    def _operator(self, parts, op: str, arg: Any, ops: Mapping[str, Any], ctx: _Ctx) -> str:
        if op == "$eq":
            return self._field(parts, ctx, lambda v, t: self._eq(v, t, arg))
        if op == "$ne":
            return _negate(self._field(parts, ctx, lambda v, t: self._eq(v, t, arg)))
        if op in ("$in", "$nin"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise ValueError(f"{op} needs a list")
            term = self._field(parts, ctx, lambda v, t: self._in(v, t, list(arg)))
            return term if op == "$in" else _negate(term)
        if op in _RANGE:
            return self._field(parts, ctx, lambda v, t: self._range(v, t, _RANGE[op], arg))
        if op == "$exists":
            term = self._field(parts, ctx, lambda v, t: f"{t} IS NOT NULL")
            return term if arg else _negate(term)
        if op == "$regex":
            flags = _regex_flags(ops.get("$options", ""))
            pattern = arg.pattern if isinstance(arg, re.Pattern) else arg
            if isinstance(arg, re.Pattern):
                flags |= arg.flags
            return self._field(parts, ctx, lambda v, t: self._regex(v, t, pattern, flags))
        if op == "$not":
            negations = 1
            while isinstance(arg, Mapping) and set(arg) == {"$not"}:
                arg, negations = arg["$not"], negations + 1
            if isinstance(arg, re.Pattern):
                inner = self._field(
                    parts, ctx, lambda v, t: self._regex(v, t, arg.pattern, arg.flags)
                )
            elif isinstance(arg, Mapping) and arg and all(str(k).startswith("$") for k in arg):
                inner = self._operators(parts, arg, ctx)
            else:
                raise ValueError("$not needs an operator document or a regular expression")
            return _negate(inner) if negations % 2 else f"COALESCE(({inner}), 0)"
        if op == "$size":
            return self._size(*self._access(parts, ctx), arg)
        if op == "$all":
            if not isinstance(arg, (list, tuple)) or not arg:
                raise ValueError("$all needs a non-empty list")
            return _join(
                [self._field(parts, ctx, lambda v, t, x=x: self._eq(v, t, x)) for x in arg], "AND"
            )
        raise UnsupportedOperatorError(op)

    def _access(
        self, parts: tuple[str, ...], ctx: _Ctx, index_at: tuple[int, ...] = ()
    ) -> tuple[str, str]:
        """Return SQL for the value and JSON type at ``parts`` below ``ctx``."""
        lit = path_literal(parts, index_at)
        return f"json_extract({ctx.base}, {lit})", f"json_type({ctx.base}, {lit})"

    def _field(self, parts: tuple[str, ...], ctx: _Ctx, pred: Callable[[str, str], str]) -> str:
        """Apply ``pred`` with Mongo's array semantics where this collection has arrays."""
        indexed = self._index_positions(parts, ctx)
        if indexed:
            return pred(*self._access(parts, ctx, indexed))
        for cut in range(1, len(parts) + 1):
            if ".".join(ctx.prefix + parts[:cut]) in self.array_paths:
                return self._through_array(parts, cut, ctx, pred)
        return pred(*self._access(parts, ctx))

    def _index_positions(self, parts: tuple[str, ...], ctx: _Ctx) -> tuple[int, ...]:
        """Numeric parts right after a known array (``sites.0.label``) index into it."""
        return tuple(
            i for i in range(1, len(parts))
            if parts[i].isdigit() and ".".join(ctx.prefix + parts[:i]) in self.array_paths
        )

    def _through_array(self, parts, cut: int, ctx: _Ctx, pred) -> str:
        """Direct match OR a match on any element of the array at ``parts[:cut]``.

        Parameters are appended in the order their ``?`` appear in the returned SQL.
        """
        direct = pred(*self._access(parts, ctx))
        alias = f"j{next(self._aliases)}"
        head, rest = parts[:cut], parts[cut:]
        lit = path_literal(head)
        elem_ctx = _Ctx(f"{alias}.value", ctx.prefix + head)
        if rest:
            inner = (
                f"CASE WHEN {alias}.type = 'object' THEN ({self._field(rest, elem_ctx, pred)}) "
                "ELSE 0 END"
            )
        else:
            inner = pred(f"{alias}.value", f"{alias}.type")
        exists = (
            f"CASE WHEN json_type({ctx.base}, {lit}) = 'array' THEN EXISTS (SELECT 1 FROM "
            f"json_each({ctx.base}, {lit}) AS {alias} WHERE {inner}) ELSE 0 END"
        )
        return f"({direct}) OR ({exists})"

    def _eq(self, val: str, typ: str, target: Any) -> str:
        target = _encode_query_value(target)
        if target is None:
            return f"({typ} IS NULL OR {typ} = 'null')"
        if isinstance(target, bool):
            return f"{typ} = '{'true' if target else 'false'}'"
        if isinstance(target, (int, float)):
            self._bind(target)
            return f"({val} = ? AND {typ} IN ('integer', 'real'))"
        if isinstance(target, str):
            self._bind(target)
            return f"({val} = ? AND {typ} = 'text')"
        if isinstance(target, (dict, list)):
            self._bind(_dumps(target))
            return f"({typ} IN ('object', 'array') AND {val} = json(?))"
        raise TypeError(f"cannot compare with a value of type {type(target).__name__}")

    def _in(self, val: str, typ: str, targets: list[Any]) -> str:
        if not targets:
            return "0"
        encoded = [_encode_query_value(t) for t in targets]
        strings = [t for t in encoded if isinstance(t, str)]
        numbers = [t for t in encoded if isinstance(t, (int, float)) and not isinstance(t, bool)]
        containers = [t for t in encoded if isinstance(t, (dict, list))]
        terms = []
        for group, types in ((strings, "('text')"), (numbers, "('integer', 'real')")):
            if group:
                terms.append(f"({self._member(val, group)} AND {typ} IN {types})")
        if containers:
            self._bind(_dumps(containers))
            terms.append(
                f"({typ} IN ('object', 'array') AND {val} IN (SELECT json(value) FROM "
                "json_each(?)))"
            )
        singles = {t for t in encoded if t is None or isinstance(t, bool)}
        terms.extend(self._eq(val, typ, target) for target in sorted(singles, key=repr))
        return _join(terms, "OR")

    def _member(self, val: str, values: list[Any]) -> str:
        """Compile ``val IN (...)``: short lists bound one by one, long ones as a JSON array.

        Short lists stay indexable; the JSON array is read once by an uncorrelated ``json_each``
        subquery, so there is no limit on the length.
        """
        if len(values) <= _INLINE_IN:
            for value in values:
                self._bind(value)
            return f"{val} IN ({', '.join('?' * len(values))})"
        for value in values:
            check_value(value)
        self._bind(_dumps(values))
        return f"{val} IN (SELECT value FROM json_each(?))"

    def _bind(self, value: Any) -> None:
        """Append a parameter SQLite can hold: 64-bit integers, UTF-8-encodable text."""
        check_value(value)
        self.params.append(value)

    def _range(self, val: str, typ: str, sql_op: str, target: Any) -> str:
        target = _encode_query_value(target)
        if isinstance(target, bool) or not isinstance(target, (int, float, str)):
            raise ValueError(f"range comparison needs a number, string or datetime, got {target!r}")
        self._bind(target)
        types = "('integer', 'real')" if isinstance(target, (int, float)) else "('text')"
        return f"({val} {sql_op} ? AND {typ} IN {types})"

    def _regex(self, val: str, typ: str, pattern: str, flags: int) -> str:
        if not isinstance(pattern, str):
            raise InvalidQuery("$regex needs a string pattern")
        try:
            re.compile(pattern, flags)
        except (re.error, ValueError, OverflowError, RecursionError) as exc:
            raise InvalidQuery(f"invalid $regex {pattern!r}: {exc}") from None
        self._bind(pattern)
        self.params.append(flags)
        return f"({typ} = 'text' AND crystal_regexp(?, ?, {val}))"

    def _size(self, val: str, typ: str, size: Any) -> str:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError("$size needs an integer")
        self._bind(size)
        return f"({typ} = 'array' AND json_array_length({val}) = ?)"


_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _join(terms: list[str], op: str) -> str:
    """Join ``terms`` by AND/OR; long lists as a balanced tree.

    SQLite's expression depth so grows with log(N), not N.
    """
    if len(terms) == 1:
        return terms[0]
    if len(terms) <= _CHAIN:
        return f" {op} ".join(f"({t})" for t in terms)
    middle = len(terms) // 2
    return f"({_join(terms[:middle], op)}) {op} ({_join(terms[middle:], op)})"


def _equalities_as_in(clauses: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rewrite an ``$or`` of equalities on one field as one ``$in``, as MongoDB's planner does.

    For example ``[{"n": 1}, {"n": 2}, ...]``: one membership test per row instead of N comparisons.
    """
    by_field: dict[str, list[Any]] = {}
    rest: list[Mapping[str, Any]] = []
    for clause in clauses:
        field, value = next(iter(clause.items())) if len(clause) == 1 else ("$", None)
        if isinstance(value, Mapping) and set(value) == {"$eq"}:
            value = value["$eq"]
        if not field.startswith("$") and (
            value is None or isinstance(value, (str, int, float, bool))
        ):
            by_field.setdefault(field, []).append(value)
        else:
            rest.append(clause)
    merged = [{field: {"$in": values}} if len(values) > 1 else {field: values[0]}
              for field, values in by_field.items()]
    return [*merged, *rest]


def _flattened(key: str, clauses: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Lift the clauses of same-operator nested ``$and``/``$or`` into one list.

    For example ``{"$and": [{"$and": [...]}]}``: same meaning, a shallower SQL expression.
    """
    if key == "$nor":
        return list(clauses)
    flat: list[Mapping[str, Any]] = []
    stack = list(reversed(clauses))
    while stack:
        clause = stack.pop()
        inner = clause.get(key) if len(clause) == 1 else None
        if isinstance(inner, list) and inner and all(isinstance(d, Mapping) for d in inner):
            stack.extend(reversed(inner))
        else:
            flat.append(clause)
    return flat


def check_value(value: Any) -> None:
    """Refuse a value SQLite cannot bind as a query parameter.

    Parameters
    ----------
    value
        An integer (it must fit in 64 bits) or a string (it must be valid UTF-8); other values
        pass.

    Raises
    ------
    InvalidQuery
        Naming the value.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        _check_int(value)
    elif isinstance(value, str):
        _check_text(value)


def _check_int(value: int) -> None:
    if not _INT64[0] <= value <= _INT64[1]:
        raise InvalidQuery(f"integer {value} is outside the 64-bit range a query can compare with")


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQuery(
            f"string {value!r} is not valid UTF-8 ({exc.reason} at {exc.start})"
        ) from None


def _negate(term: str) -> str:
    """Negation that treats SQL NULL (missing field) as 'no match', as Mongo does."""
    return f"NOT COALESCE(({term}), 0)"


def _regex_flags(options: str) -> int:
    flags = 0
    for ch in options:
        flag = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}.get(ch)
        if flag is None:
            raise UnsupportedOperatorError(f"$options:{ch}")
        flags |= flag
    return flags


def _encode_query_value(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.loads(_dumps(value))
    return encode_scalar(value)


def _dumps(value: Any) -> str:
    return json.dumps(
        _encode_tree(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _encode_tree(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidQuery(
                "document keys must be strings, got "
                f"{next(k for k in value if not isinstance(k, str))!r}"
            )
        return {k: _encode_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_tree(v) for v in value]
    return encode_scalar(value)
