"""Declarative match conditions compiled into closures.

A condition is one mapping:

- ``all: [cond, ...]``, ``any: [cond, ...]``, ``not: cond``
- ``expr: "<expression>"`` (see ``expr.py``)
- a field test: ``field: <path>`` plus one operator — ``equals``, ``in``, ``glob``, ``regex``,
  ``contains``, ``cidr``, ``exists``, ``in_lookup`` — or one or more of ``gt``/``gte``/``lt``/
  ``lte``; options ``ignore_case: true`` and ``every: true``.

A field that holds a list (``indicators.ips``, ``resources.type``) matches when any element
does, or, with ``every: true``, when it is non-empty and every element does.

Each compiled condition carries ``hints``: equality constraints that must hold for it to
match (``product in {guardduty}``, ``resources.tags.env in {prod}``: on a list field, some
element equals one of the values), which the rule index uses to skip rules that cannot match.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.evaluate import expr as ex
from services.evaluate import paths
from services.evaluate.expr import LookupSource
from services.evaluate.yamlsrc import LocatedDict, LocatedList, line_of

Pred = Callable[[Any, LookupSource], bool]
Explain = Callable[[Any, LookupSource], str]
Hint = tuple[str, frozenset[str]]  # (field path as written by paths.render, values)

# Single-valued alert fields the rule index can key on, most selective first.
INDEX_FIELDS: tuple[str, ...] = ("control_id", "finding_type", "product", "provider")

VALUE_OPS = ("equals", "in", "glob", "regex", "contains", "cidr", "exists", "in_lookup")
NUMERIC_OPS = ("gt", "gte", "lt", "lte")
FIELD_KEYS = ("field", "ignore_case", "every", *VALUE_OPS, *NUMERIC_OPS)
COMBINATORS = ("all", "any", "not", "expr")


class MatchError(ValueError):
    """One or more problems in a condition tree; ``errors`` holds each (line, message)."""

    def __init__(self, line: int, message: str, errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.errors = errors or [(line, message)]


def _compile_all(items: list[tuple[Any, int]]) -> list[Cond]:
    """Compile sibling conditions, reporting every broken one rather than the first."""
    out: list[Cond] = []
    errors: list[tuple[int, str]] = []
    for v, ln in items:
        try:
            out.append(compile_cond(v, ln))
        except MatchError as exc:
            errors.extend(exc.errors)
    if errors:
        raise MatchError(errors[0][0], errors[0][1], errors)
    return out


@dataclass(frozen=True)
class Cond:
    test: Pred
    explain: Explain
    text: str
    hints: tuple[Hint, ...] = ()
    tables: frozenset[str] = field(default_factory=frozenset)
    always: bool = False


ALWAYS = Cond(lambda a, lk: True, lambda a, lk: "always", "always", always=True)


def compile_match(node: Any, line: int) -> Cond:
    """Compile a ``match:`` value: a condition mapping, or a list meaning ``all``."""
    if isinstance(node, list):
        return _all(node, line_of(node, line))
    return compile_cond(node, line)


def compile_cond(node: Any, line: int) -> Cond:
    if not isinstance(node, dict):
        raise MatchError(line, f"a condition is a mapping (field/all/any/not/expr), got {_kind(node)}")
    ln = line_of(node, line)
    keys = set(node)
    combos = keys & set(COMBINATORS)
    if combos:
        if len(keys) != 1:
            extra = sorted(keys - {next(iter(combos))}) if len(combos) == 1 else sorted(combos)
            raise MatchError(
                ln, f"{'/'.join(sorted(combos))} stands alone in its mapping; also found {', '.join(extra)} "
                "(wrap several conditions in all: [...])"
            )  # fmt: skip
        (key,) = combos
        kl = node.line_of(key) if isinstance(node, LocatedDict) else ln
        value = node[key]
        if key == "all":
            return _all(value, kl)
        if key == "any":
            return _any(value, kl)
        if key == "not":
            inner = compile_cond(value, kl)
            t = inner.test
            return Cond(
                lambda a, lk: not t(a, lk),
                lambda a, lk: f"not ({inner.text})",
                f"not ({inner.text})",
                tables=inner.tables,
            )
        return compile_expr(value, kl)
    if "field" not in keys:
        unknown = sorted(keys)
        hint = _suggest(unknown[0], (*FIELD_KEYS, *COMBINATORS)) if unknown else ""
        raise MatchError(ln, f"a condition needs 'field' (or all/any/not/expr); got {', '.join(unknown)}{hint}")
    return _field(node, ln)


def compile_expr(src: Any, line: int) -> Cond:
    if not isinstance(src, str):
        raise MatchError(line, f"expr takes text, got {_kind(src)}")
    try:
        c = ex.compile_condition(src)
    except ex.ExprError as exc:
        raise MatchError(line, f"expr {src!r}: {exc}") from None
    fn = c.fn
    return Cond(
        fn,
        lambda a, lk: f"expr {src!r} ({c.describe_values(a)})",
        f"expr {src!r}",
        hints=tuple(expr_hints(c.node)),
        tables=frozenset(ex.tables_of(c.node)),
    )


def expr_hints(node: ex.Node) -> list[Hint]:
    """Equality constraints at the top of an expression's and-chain."""
    parts = node.args if isinstance(node, ex.BoolOp) and node.op == "and" else (node,)
    out: list[Hint] = []
    for p in parts:
        if not isinstance(p, ex.Compare) or not isinstance(p.left, ex.Path):
            continue
        f = p.left.text
        if p.op == "==" and isinstance(p.right, ex.Const) and isinstance(p.right.value, str):
            out.append((f, frozenset([p.right.value])))
        elif p.op == "in" and isinstance(p.right, ex.ListConst) and all(isinstance(v, str) for v in p.right.values):
            out.append((f, frozenset(p.right.values)))
    return out


def _items(value: Any, line: int, key: str) -> list[tuple[Any, int]]:
    if not isinstance(value, list) or not value:
        raise MatchError(line, f"{key} takes a non-empty list of conditions, got {_kind(value)}")
    lines = value.item_lines if isinstance(value, LocatedList) else [line] * len(value)
    return list(zip(value, lines, strict=True))


def _all(value: Any, line: int) -> Cond:
    conds = _compile_all(_items(value, line, "all"))
    if len(conds) == 1:
        return conds[0]
    tests = tuple(c.test for c in conds)
    if len(tests) == 2:
        t1, t2 = tests

        def test(a: Any, lk: LookupSource) -> bool:
            return t1(a, lk) and t2(a, lk)

    elif len(tests) == 3:
        t1, t2, t3 = tests

        def test(a: Any, lk: LookupSource) -> bool:
            return t1(a, lk) and t2(a, lk) and t3(a, lk)

    else:

        def test(a: Any, lk: LookupSource) -> bool:
            for t in tests:
                if not t(a, lk):
                    return False
            return True

    return Cond(
        test,
        lambda a, lk: " and ".join(c.explain(a, lk) for c in conds),
        "all(" + "; ".join(c.text for c in conds) + ")",
        hints=tuple(h for c in conds for h in c.hints),
        tables=frozenset().union(*(c.tables for c in conds)),
    )


def _any(value: Any, line: int) -> Cond:
    conds = _compile_all(_items(value, line, "any"))
    if len(conds) == 1:
        return conds[0]
    tests = tuple(c.test for c in conds)

    def test(a: Any, lk: LookupSource) -> bool:
        for t in tests:
            if t(a, lk):
                return True
        return False

    def explain(a: Any, lk: LookupSource) -> str:
        for c in conds:
            if c.test(a, lk):
                return c.explain(a, lk)
        return "any(...)"

    # Usable for the index only when every branch constrains the same field.
    hints: tuple[Hint, ...] = ()
    for f in [h[0] for h in conds[0].hints]:
        per = [next((h[1] for h in c.hints if h[0] == f), None) for c in conds]
        if all(p is not None for p in per):
            hints = ((f, frozenset().union(*(p for p in per if p is not None))),)
            break
    return Cond(
        test,
        explain,
        "any(" + "; ".join(c.text for c in conds) + ")",
        hints=hints,
        tables=frozenset().union(*(c.tables for c in conds)),
    )


# ---------------------------------------------------------------------------- field tests
def _field(node: dict[str, Any], line: int) -> Cond:
    for k in node:
        if k not in FIELD_KEYS:
            raise MatchError(_line(node, k, line), f"unknown key {k!r} in a field condition{_suggest(k, FIELD_KEYS)}")
    raw_path = node["field"]
    if not isinstance(raw_path, str):
        raise MatchError(_line(node, "field", line), f"field takes a path like 'severity.score', got {_kind(raw_path)}")
    try:
        steps = paths.parse_path(raw_path)
        paths.validate(steps)
    except paths.PathError as exc:
        raise MatchError(_line(node, "field", line), str(exc)) from None
    ops = [k for k in node if k in VALUE_OPS]
    nums = [k for k in node if k in NUMERIC_OPS]
    if len(ops) + (1 if nums else 0) != 1:
        found = ops + nums
        raise MatchError(
            line,
            f"a field condition takes exactly one of {', '.join(VALUE_OPS)} (or gt/gte/lt/lte), "
            f"found {', '.join(found) if found else 'none'}",
        )
    ignore_case = _flag(node, "ignore_case", line)
    every = _flag(node, "every", line)
    get = paths.getter(steps)
    label = paths.render(steps)
    if nums:
        return _numeric(node, nums, get, label, every, line)
    op = ops[0]
    arg = node[op]
    oline = _line(node, op, line)
    if op == "exists":
        if not isinstance(arg, bool):
            raise MatchError(oline, f"exists takes true or false, got {_kind(arg)}")
        want = arg

        def exists_test(a: Any, lk: LookupSource) -> bool:
            v = get(a)
            return (v is not None and v != "" and v != [] and v != {}) is want

        return _cond(exists_test, get, f"{label} exists: {str(want).lower()}")
    if op == "equals":
        return _equals(arg, get, label, steps, ignore_case, every, oline)
    if op == "in":
        return _in(arg, get, label, steps, ignore_case, every, oline)
    if op in ("glob", "regex"):
        patterns = _str_list(arg, oline, op)
        search: Callable[[str], Any]
        try:
            if op == "glob":
                search = ex.compile_globs(patterns, ignore_case).match
            else:
                # Each pattern on its own, so inline flags like (?i) keep working in a list.
                flags = re.IGNORECASE if ignore_case else 0
                compiled = [re.compile(p, flags) for p in patterns]
                search = compiled[0].search if len(compiled) == 1 else _search_any(compiled)
        except (ex.ExprError, re.error) as exc:
            bad = next((p for p in patterns if _bad_regex(p)), patterns[0])
            raise MatchError(oline, f"bad {op} {bad!r}: {exc}") from None
        text = f"{label} {op} {_show(arg)}"
        if not every and not paths.is_multi(steps):
            return _scalar_search(steps, get, search, text)
        return _elementwise(lambda v, lk: v.__class__ is str and search(v) is not None, get, text, every)
    if op == "contains":
        if not isinstance(arg, str):
            raise MatchError(oline, f"contains takes text, got {_kind(arg)}")
        needle = arg.lower() if ignore_case else arg
        if ignore_case:
            return _elementwise(
                lambda v, lk: v.__class__ is str and needle in v.lower(), get, f"{label} contains {arg!r}", every
            )
        return _elementwise(lambda v, lk: v.__class__ is str and needle in v, get, f"{label} contains {arg!r}", every)
    if op == "cidr":
        try:
            nets = ex.parse_networks(_str_list(arg, oline, "cidr"))
        except ex.ExprError as exc:
            raise MatchError(oline, str(exc)) from None
        inside = ex.in_networks(nets)
        return _elementwise(lambda v, lk: inside(v), get, f"{label} cidr {_show(arg)}", every)
    # in_lookup
    if not isinstance(arg, str) or not arg:
        raise MatchError(oline, f"in_lookup takes a table name, got {_kind(arg)}")
    table = arg

    def in_table(v: Any, lk: LookupSource) -> bool:
        if v.__class__ is int:
            v = str(v)
        return v.__class__ is str and lk.get(table, v) is not None

    c = _elementwise(in_table, get, f"{label} in_lookup {table!r}", every)
    return Cond(c.test, c.explain, c.text, tables=frozenset([table]))


def _equals(
    arg: Any, get: paths.Getter, label: str, steps: list[paths.Step], ignore_case: bool, every: bool, line: int
) -> Cond:
    if isinstance(arg, dict | list):
        raise MatchError(line, f"equals takes one value (use 'in' for several), got {_kind(arg)}")
    text = f"{label} equals {arg!r}"
    if isinstance(arg, str) and not ignore_case:
        hints = _hint(steps, [arg], every)
        c = arg
        if every:
            return _elementwise(lambda v, lk: v == c, get, text, every)

        def eq_str(a: Any, lk: LookupSource) -> bool:
            v = get(a)
            if v.__class__ is str:
                return bool(v == c)
            if v.__class__ is list:
                return c in v
            return False

        return _cond(eq_str, get, text, hints)
    if isinstance(arg, str):
        low = arg.lower()
        return _elementwise(lambda v, lk: v.__class__ is str and v.lower() == low, get, text, every)
    return _elementwise(lambda v, lk: ex.eq(v, arg), get, text, every)


def _in(
    arg: Any, get: paths.Getter, label: str, steps: list[paths.Step], ignore_case: bool, every: bool, line: int
) -> Cond:
    if not isinstance(arg, list) or not arg:
        raise MatchError(line, f"in takes a non-empty list of values, got {_kind(arg)}")
    for v in arg:
        if isinstance(v, dict | list):
            raise MatchError(line, f"in takes plain values, got {_kind(v)}")
    text = f"{label} in {_show(arg)}"
    if all(isinstance(v, str) for v in arg):
        if ignore_case:
            lowered = frozenset(v.lower() for v in arg)
            return _elementwise(lambda v, lk: v.__class__ is str and v.lower() in lowered, get, text, every)
        values = frozenset(arg)
        if every:
            return _elementwise(lambda v, lk: v.__class__ is str and v in values, get, text, every)

        def in_str(a: Any, lk: LookupSource) -> bool:
            v = get(a)
            if v.__class__ is str:
                return v in values
            if v.__class__ is list:
                for e in v:
                    if e.__class__ is str and e in values:
                        return True
            return False

        return _cond(in_str, get, text, _hint(steps, arg, every))
    items = list(arg)
    return _elementwise(lambda v, lk: ex.member(v, items), get, text, every)


def _numeric(node: dict[str, Any], ops: list[str], get: paths.Getter, label: str, every: bool, line: int) -> Cond:
    bounds: list[tuple[Callable[[Any, Any], bool], float]] = []
    parts = []
    for op in ops:
        v = node[op]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise MatchError(_line(node, op, line), f"{op} takes a number, got {_kind(v)}")
        sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        bounds.append((ex._ORDER[sym], v))
        parts.append(f"{sym} {v}")

    def in_range(v: Any, lk: LookupSource) -> bool:
        if not (v.__class__ is int or v.__class__ is float):
            return False
        for cmp, b in bounds:
            if not cmp(v, b):
                return False
        return True

    return _elementwise(in_range, get, f"{label} {' and '.join(parts)}", every)


def _scalar_search(steps: list[paths.Step], get: paths.Getter, search: Callable[[str], Any], text: str) -> Cond:
    """A regex/glob on a single-valued field, fused into one closure: the most common unindexed test."""
    if len(steps) == 1:
        k = steps[0]

        def test1(a: Any, lk: LookupSource) -> bool:
            v = a.get(k)
            return v.__class__ is str and search(v) is not None

        return _cond(test1, get, text)

    def test(a: Any, lk: LookupSource) -> bool:
        v = get(a)
        return v.__class__ is str and search(v) is not None

    return _cond(test, get, text)


def _elementwise(
    pred: Callable[[Any, LookupSource], bool], get: paths.Getter, text: str, every: bool, hints: tuple[Hint, ...] = ()
) -> Cond:
    if every:

        def test(a: Any, lk: LookupSource) -> bool:
            v = get(a)
            if v.__class__ is list:
                if not v:
                    return False
                for e in v:
                    if not pred(e, lk):
                        return False
                return True
            return v is not None and pred(v, lk)

        return _cond(test, get, text + " (every element)", hints)

    def test_any(a: Any, lk: LookupSource) -> bool:
        v = get(a)
        if v.__class__ is list:
            for e in v:
                if pred(e, lk):
                    return True
            return False
        return v is not None and pred(v, lk)

    return _cond(test_any, get, text, hints)


def _cond(test: Pred, get: paths.Getter, text: str, hints: tuple[Hint, ...] = ()) -> Cond:
    # The same few values explain most matches (an account, a control id): memoize the text.
    memo: dict[Any, str] = {}

    def explain(a: Any, lk: LookupSource) -> str:
        v = get(a)
        k = tuple(v) if v.__class__ is list else v
        try:
            hit = memo.get(k)
        except TypeError:  # unhashable (a dict): no memo
            return f"{text} (got {ex.short(v)})"
        if hit is None:
            if len(memo) >= 1024:
                memo.clear()
            hit = memo[k] = f"{text} (got {ex.short(v)})"
        return hit

    return Cond(test, explain, text, hints=hints)


def _hint(steps: list[paths.Step], values: Sequence[str], every: bool) -> tuple[Hint, ...]:
    if every:
        return ()
    return ((paths.render(steps), frozenset(values)),)


def _flag(node: dict[str, Any], key: str, line: int) -> bool:
    v = node.get(key, False)
    if not isinstance(v, bool):
        raise MatchError(_line(node, key, line), f"{key} takes true or false, got {_kind(v)}")
    return v


def _str_list(arg: Any, line: int, op: str) -> list[str]:
    items = arg if isinstance(arg, list) else [arg]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise MatchError(line, f"{op} takes text or a list of texts, got {_kind(arg)}")
    return list(items)


def _search_any(compiled: list[re.Pattern[str]]) -> Callable[[str], re.Match[str] | None]:
    def search(v: str) -> re.Match[str] | None:
        for rx in compiled:
            m = rx.search(v)
            if m is not None:
                return m
        return None

    return search


def _bad_regex(p: str) -> bool:
    try:
        re.compile(p)
    except re.error:
        return True
    return False


def _line(node: dict[str, Any], key: str, default: int) -> int:
    return node.line_of(key) if isinstance(node, LocatedDict) else default


def _show(v: Any) -> str:
    return ex.short(list(v) if isinstance(v, list) else v, 120)


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"


def _suggest(word: str, options: Sequence[str]) -> str:
    hint = difflib.get_close_matches(word, list(options), 1)
    return f"; did you mean {hint[0]!r}?" if hint else ""
