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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "UnsupportedOperatorError",
    "InvalidFieldError",
    "Compiler",
    "path_literal",
    "split_field",
    "encode_scalar",
    "decode_document",
    "DATETIME_TAG",
]

DATETIME_TAG = "\x01datetime:"
FLOAT_TAG = "\x01float:"
_FORBIDDEN = re.compile(r'["\\\x00-\x1f\x7f]')
_NUMERIC = ("integer", "real")


class UnsupportedOperatorError(ValueError):
    """A Mongo operator this store does not implement; the message names it."""

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"Unsupported MongoDB query operator {operator!r} in SQLiteStore; supported: "
            "$eq $ne $in $nin $gt $gte $lt $lte $exists $regex $options $not $size $all "
            "$and $or $nor"
        )
        self.operator = operator


class InvalidFieldError(ValueError):
    """A field name that cannot be expressed as a safe JSON path."""


def split_field(name: str) -> tuple[str, ...]:
    """Split a dotted Mongo field name and refuse parts that could alter a JSON path."""
    if not isinstance(name, str) or not name:
        raise InvalidFieldError(f"field name must be a non-empty string, got {name!r}")
    parts = tuple(name.split("."))
    for part in parts:
        if not part or part.startswith("$") or _FORBIDDEN.search(part):
            raise InvalidFieldError(f"invalid field name {name!r}")
    return parts


def path_literal(parts: Iterable[str], index_at: Iterable[int] = ()) -> str:
    """A validated field as a SQL string literal holding the JSON path ``$."a"."b"``.

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
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
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
    """A stored document's JSON text back to Python, tagged scalars decoded.

    Parameters
    ----------
    text
        The ``doc`` column of a collection table.

    Returns
    -------
    Any
        The document; the tree is walked only when the text holds a tag (``\\u0001`` escaped).
    """
    value = json.loads(text)
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
        """The SQL boolean expression for ``criteria`` (``1`` for an empty filter)."""
        if not criteria:
            return "1"
        if not isinstance(criteria, Mapping):
            raise TypeError(f"criteria must be a dict, got {type(criteria).__name__}")
        terms = [self._clause(k, v, _Ctx("doc")) for k, v in criteria.items()]
        return " AND ".join(f"({t})" for t in terms)

    def _clause(self, key: str, value: Any, ctx: _Ctx) -> str:
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{key} needs a non-empty list")
            subs = [" AND ".join(f"({self._clause(k, v, ctx)})" for k, v in d.items()) or "1"
                    for d in value]
            if key == "$and":
                return " AND ".join(f"({s})" for s in subs)
            joined = " OR ".join(f"({s})" for s in subs)
            return joined if key == "$or" else f"NOT COALESCE(({joined}), 0)"
        if key.startswith("$"):
            raise UnsupportedOperatorError(key)
        parts = split_field(key)
        if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            return self._operators(parts, value, ctx)
        if isinstance(value, re.Pattern):
            return self._field(parts, ctx, lambda v, t: self._regex(v, t, value.pattern, value.flags))
        return self._field(parts, ctx, lambda v, t: self._eq(v, t, value))

    def _operators(self, parts: tuple[str, ...], ops: Mapping[str, Any], ctx: _Ctx) -> str:
        terms = []
        for op, arg in ops.items():
            if op == "$options":
                if "$regex" not in ops:
                    raise ValueError("$options without $regex")
                continue
            terms.append(self._operator(parts, op, arg, ops, ctx))
        return " AND ".join(f"({t})" for t in terms)

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
            if isinstance(arg, re.Pattern):
                inner = self._field(parts, ctx, lambda v, t: self._regex(v, t, arg.pattern, arg.flags))
            elif isinstance(arg, Mapping) and arg and all(str(k).startswith("$") for k in arg):
                inner = self._operators(parts, arg, ctx)
            else:
                raise ValueError("$not needs an operator document or a regular expression")
            return _negate(inner)
        if op == "$size":
            return self._size(*self._access(parts, ctx), arg)
        if op == "$all":
            if not isinstance(arg, (list, tuple)) or not arg:
                raise ValueError("$all needs a non-empty list")
            return " AND ".join(
                f"({self._field(parts, ctx, lambda v, t, x=x: self._eq(v, t, x))})" for x in arg
            )
        raise UnsupportedOperatorError(op)

    def _access(self, parts: tuple[str, ...], ctx: _Ctx, index_at: tuple[int, ...] = ()) -> tuple[str, str]:
        """SQL for the value and JSON type at ``parts`` below ``ctx``."""
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
            inner = f"CASE WHEN {alias}.type = 'object' THEN ({self._field(rest, elem_ctx, pred)}) ELSE 0 END"
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
            self.params.append(target)
            return f"({val} = ? AND {typ} IN ('integer', 'real'))"
        if isinstance(target, str):
            self.params.append(target)
            return f"({val} = ? AND {typ} = 'text')"
        if isinstance(target, (dict, list)):
            self.params.append(_dumps(target))
            return f"({typ} IN ('object', 'array') AND {val} = json(?))"
        raise TypeError(f"cannot compare with a value of type {type(target).__name__}")

    def _in(self, val: str, typ: str, targets: list[Any]) -> str:
        if not targets:
            return "0"
        encoded = [_encode_query_value(t) for t in targets]
        if all(isinstance(t, str) for t in encoded):
            self.params.extend(encoded)
            return f"({val} IN ({', '.join('?' * len(encoded))}) AND {typ} = 'text')"
        if all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in encoded):
            self.params.extend(encoded)
            return f"({val} IN ({', '.join('?' * len(encoded))}) AND {typ} IN ('integer', 'real'))"
        return " OR ".join(f"({self._eq(val, typ, t)})" for t in encoded)

    def _range(self, val: str, typ: str, sql_op: str, target: Any) -> str:
        target = _encode_query_value(target)
        if isinstance(target, bool) or not isinstance(target, (int, float, str)):
            raise ValueError(f"range comparison needs a number, string or datetime, got {target!r}")
        self.params.append(target)
        types = "('integer', 'real')" if isinstance(target, (int, float)) else "('text')"
        return f"({val} {sql_op} ? AND {typ} IN {types})"

    def _regex(self, val: str, typ: str, pattern: str, flags: int) -> str:
        if not isinstance(pattern, str):
            raise ValueError("$regex needs a string pattern")
        self.params.extend([pattern, flags])
        return f"({typ} = 'text' AND crystal_regexp(?, ?, {val}))"

    def _size(self, val: str, typ: str, size: Any) -> str:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError("$size needs an integer")
        self.params.append(size)
        return f"({typ} = 'array' AND json_array_length({val}) = ?)"


_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


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
    return json.dumps(_encode_tree(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _encode_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _encode_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_tree(v) for v in value]
    return encode_scalar(value)
