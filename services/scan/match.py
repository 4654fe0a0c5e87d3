"""The scan checks' ``match:`` conditions, compiled into predicates over a resource document.

The surface syntax is the evaluate service's rule match language (the subset that needs no
lookups): so a check reads like a rule, and ``compile_match`` can later be backed by
evaluate's compiler without touching a check file.

A condition is one mapping:

- ``all: [cond, ...]``, ``any: [cond, ...]``, ``not: cond`` (a bare list means ``all``);
- a field test: ``field: <path>`` plus exactly one of ``equals``, ``in``, ``glob``, ``regex``,
  ``contains``, ``cidr``, ``exists`` — or one or more of ``gt``/``gte``/``lt``/``lte``;
  options ``ignore_case: true`` and ``every: true``.

Paths are dotted (``facts.rules``); a key with dots in it is quoted: ``tags["kubernetes.io/x"]``.
A path that crosses a list yields every value found (flattened), and a test on a list matches
when any element does (or, with ``every: true``, when it is non-empty and all elements do).
A missing field matches nothing except ``exists: false``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alertline.errors import ConfigError

Predicate = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Any], Any]

VALUE_OPS = ("equals", "in", "glob", "regex", "contains", "cidr", "exists")
NUMERIC_OPS = ("gt", "gte", "lt", "lte")
FIELD_KEYS = ("field", "ignore_case", "every", *VALUE_OPS, *NUMERIC_OPS)
COMBINATORS = ("all", "any", "not")


class MatchError(ConfigError):
    """A ``match:`` condition is malformed; ``where`` locates it inside the condition."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def compile_match(spec: Any) -> Predicate:
    """Compile a ``match:`` value into ``predicate(document) -> bool``."""
    return _compile(spec, "match")


# ---------------------------------------------------------------------------- paths
_SEGMENT = re.compile(r"""\.?(?:([A-Za-z_$@][\w$@:/-]*)|\[\s*"([^"]*)"\s*\]|\[\s*'([^']*)'\s*\])""")


def parse_path(path: str) -> tuple[str, ...]:
    """``a.b["c.d"]`` -> ``("a", "b", "c.d")``."""
    if not path or not isinstance(path, str):
        raise ValueError("a path is non-empty text")
    out: list[str] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None or (pos == 0 and path.startswith(".")):
            raise ValueError(f"bad path {path!r} at position {pos}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return tuple(out)


def getter(steps: Sequence[str]) -> Getter:
    """Walk dicts by key; crossing a list maps over it and flattens one level per list."""

    def get(doc: Any) -> Any:
        cur: Any = doc
        for step in steps:
            if isinstance(cur, list):
                nxt: list[Any] = []
                for item in cur:
                    v = item.get(step) if isinstance(item, dict) else None
                    if isinstance(v, list):
                        nxt.extend(v)
                    elif v is not None:
                        nxt.append(v)
                cur = nxt
            elif isinstance(cur, dict):
                cur = cur.get(step)
            else:
                return None
            if cur is None:
                return None
        return cur

    return get


def path_getter(path: str) -> Getter:
    return getter(parse_path(path))


# ---------------------------------------------------------------------------- compiling
def _kind(v: Any) -> str:
    return "nothing" if v is None else type(v).__name__


def _compile(node: Any, where: str) -> Predicate:
    if isinstance(node, list):
        return _all(node, where)
    if not isinstance(node, dict):
        raise MatchError(where, f"a condition is a mapping (field/all/any/not), got {_kind(node)}")
    keys = set(node)
    combos = keys & set(COMBINATORS)
    if combos:
        if len(keys) != 1:
            raise MatchError(
                where, f"{'/'.join(sorted(combos))} stands alone in its mapping; also found "
                f"{', '.join(sorted(keys - {min(combos)}))} (wrap several conditions in all: [...])"
            )  # fmt: skip
        (key,) = combos
        if key == "all":
            return _all(node[key], f"{where}.all")
        if key == "any":
            return _any(node[key], f"{where}.any")
        inner = _compile(node[key], f"{where}.not")
        return lambda d: not inner(d)
    if "field" not in keys:
        raise MatchError(
            where, f"a condition needs 'field' (or all/any/not); got {', '.join(sorted(keys)) or 'nothing'}"
        )
    return _field(node, where)


def _conditions(node: Any, where: str) -> list[Predicate]:
    if not isinstance(node, list) or not node:
        raise MatchError(where, f"takes a non-empty list of conditions, got {_kind(node)}")
    return [_compile(c, f"{where}[{i}]") for i, c in enumerate(node)]


def _all(node: Any, where: str) -> Predicate:
    preds = _conditions(node, where)
    return lambda d: all(p(d) for p in preds)


def _any(node: Any, where: str) -> Predicate:
    preds = _conditions(node, where)
    return lambda d: any(p(d) for p in preds)


def _flag(node: Mapping[str, Any], key: str, where: str) -> bool:
    v = node.get(key, False)
    if not isinstance(v, bool):
        raise MatchError(where, f"{key} takes true or false, got {_kind(v)}")
    return v


def _field(node: Mapping[str, Any], where: str) -> Predicate:
    for k in node:
        if k not in FIELD_KEYS:
            raise MatchError(where, f"unknown key {k!r} in a field condition (known: {', '.join(FIELD_KEYS)})")
    raw_path = node["field"]
    try:
        get = getter(parse_path(raw_path))
    except ValueError as exc:
        raise MatchError(where, str(exc)) from exc
    where = f"{where}({raw_path})"
    ops = [k for k in node if k in VALUE_OPS]
    nums = [k for k in node if k in NUMERIC_OPS]
    if len(ops) + (1 if nums else 0) != 1:
        raise MatchError(
            where,
            f"a field condition takes exactly one of {', '.join(VALUE_OPS)} (or gt/gte/lt/lte), "
            f"found {', '.join(ops + nums) or 'none'}",
        )
    ignore_case = _flag(node, "ignore_case", where)
    every = _flag(node, "every", where)
    if nums:
        return _elementwise(_numeric(node, nums, where), get, every)
    op = ops[0]
    arg = node[op]
    if op == "exists":
        if not isinstance(arg, bool):
            raise MatchError(where, f"exists takes true or false, got {_kind(arg)}")
        want = arg
        return lambda d: _present(get(d)) is want
    test: Callable[[Any], bool]
    if op == "equals":
        test = _equals_test([_scalar(arg, where, op)], ignore_case)
    elif op == "in":
        if not isinstance(arg, list) or not arg:
            raise MatchError(where, f"in takes a non-empty list, got {_kind(arg)}")
        test = _equals_test([_scalar(a, where, op) for a in arg], ignore_case)
    elif op in ("glob", "regex"):
        patterns = _texts(arg, where, op)
        flags = re.IGNORECASE if ignore_case else 0
        try:
            source = (
                "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
                if op == "glob"
                else "|".join(f"(?:{p})" for p in patterns)
            )
            rx = re.compile(source, flags)
        except re.error as exc:
            raise MatchError(where, f"bad {op} {arg!r}: {exc}") from exc
        search = rx.match if op == "glob" else rx.search
        test = lambda v: isinstance(v, str) and search(v) is not None  # noqa: E731
    elif op == "contains":
        if not isinstance(arg, str):
            raise MatchError(where, f"contains takes text, got {_kind(arg)}")
        needle = arg.casefold() if ignore_case else arg
        test = lambda v: isinstance(v, str) and needle in (v.casefold() if ignore_case else v)  # noqa: E731
    else:  # cidr
        try:
            nets = [ipaddress.ip_network(t, strict=False) for t in _texts(arg, where, op)]
        except ValueError as exc:
            raise MatchError(where, f"bad cidr: {exc}") from exc
        test = lambda v: _in_networks(v, nets)  # noqa: E731
    return _elementwise(test, get, every)


def _present(v: Any) -> bool:
    return v is not None and v != "" and v != [] and v != {}


def _elementwise(test: Callable[[Any], bool], get: Getter, every: bool) -> Predicate:
    def pred(d: Mapping[str, Any]) -> bool:
        v = get(d)
        if isinstance(v, list):
            if every:
                return bool(v) and all(test(x) for x in v)
            return any(test(x) for x in v)
        return v is not None and test(v)

    return pred


def _scalar(v: Any, where: str, op: str) -> Any:
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    raise MatchError(where, f"{op} compares with text, numbers or true/false, got {_kind(v)}")


def _texts(arg: Any, where: str, op: str) -> list[str]:
    items = arg if isinstance(arg, list) else [arg]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise MatchError(where, f"{op} takes text or a list of texts, got {_kind(arg)}")
    return items


def _same(a: Any, b: Any) -> bool:
    # true is not 1 here: a YAML `equals: 1` must not match a boolean flag.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _equals_test(wanted: list[Any], ignore_case: bool) -> Callable[[Any], bool]:
    if ignore_case:
        folded = [w.casefold() if isinstance(w, str) else w for w in wanted]
        return lambda v: any(_same(v.casefold() if isinstance(v, str) else v, w) for w in folded)
    return lambda v: any(_same(v, w) for w in wanted)


def _numeric(node: Mapping[str, Any], ops: list[str], where: str) -> Callable[[Any], bool]:
    bounds: list[tuple[str, float]] = []
    for op in ops:
        v = node[op]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise MatchError(where, f"{op} takes a number, got {_kind(v)}")
        bounds.append((op, float(v)))

    def test(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        for op, b in bounds:
            ok = {"gt": v > b, "gte": v >= b, "lt": v < b, "lte": v <= b}[op]
            if not ok:
                return False
        return True

    return test


def _in_networks(v: Any, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not isinstance(v, str):
        return False
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        return False
    return any(net.version == n.version and net.subnet_of(n) for n in nets)  # type: ignore[arg-type]
