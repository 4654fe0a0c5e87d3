"""A small, safe expression language for rule conditions and action templates.

Grammar (the whole of it)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") value)?
    value   := primary ("." NAME | "[" STRING "]" | "[" INT "]")*
    primary := NUMBER | "-" NUMBER | STRING | "true" | "false" | "null"
             | "[" literal ("," literal)* "]" | NAME "(" args ")" | NAME | "(" expr ")"

A bare NAME is an alert field (``product``, ``severity.score``); a call names one of the
whitelisted functions in ``FUNCTIONS``. Text is tokenized by one regular expression,
parsed by a recursive-descent parser with a depth limit, and compiled into Python closures:
nothing is ever handed to ``eval``/``exec``, names starting with ``_`` are refused, ``.x`` and
``["x"]`` only index dicts, and there are no attributes, arithmetic or loops to abuse.

Semantics: a field that crosses a list (``indicators.ips``) is a list, and comparisons and
string functions on a list are true when any element satisfies them. ``a != b`` is
``not (a == b)``. Comparisons across types are false, never an error.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.evaluate import paths

MAX_LENGTH = 4096
MAX_DEPTH = 40
MAX_NUMBER_DIGITS = 30
MAX_LIST = 1000


class LookupSource(Protocol):
    def get(self, table: str, key: str) -> Any: ...


Fn = Callable[[Any, LookupSource], Any]


class ExprError(ValueError):
    """The expression is not valid; ``column`` is 1-based when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.column = column


# ---------------------------------------------------------------------------- tokens
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
   |(?P<num>\d+(?:\.\d+)?)
   |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
   |(?P<name>[A-Za-z][A-Za-z0-9_]*)
   |(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.|-)
    """,
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # num | str | name | op | end
    text: str
    col: int
    value: Any = None


def tokenize(src: str) -> list[Tok]:
    if len(src) > MAX_LENGTH:
        raise ExprError(f"expression is {len(src)} characters long; the limit is {MAX_LENGTH}")
    out: list[Tok] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            c = src[pos]
            if c == "_":
                raise ExprError("names may not start with '_'", pos + 1)
            raise ExprError(f"unexpected character {c!r}", pos + 1)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "num":
            if len(text) > MAX_NUMBER_DIGITS:
                raise ExprError("number literal too long", pos + 1)
            out.append(Tok("num", text, pos + 1, float(text) if "." in text else int(text)))
        elif kind == "str":
            out.append(Tok("str", text, pos + 1, _unescape(text[1:-1])))
        elif kind == "name":
            if "__" in text:
                raise ExprError(f"names may not contain '__': {text!r}", pos + 1)
            out.append(Tok("name", text, pos + 1))
        elif kind == "op":
            out.append(Tok("op", text, pos + 1))
        pos = m.end()
    out.append(Tok("end", "", len(src) + 1))
    return out


def _unescape(body: str) -> str:
    # Unknown escapes stay as written, so regular expressions read naturally: "\d+".
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------- AST
@dataclass(frozen=True, slots=True)
class Const:
    value: Any


@dataclass(frozen=True, slots=True)
class ListConst:
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Path:
    steps: tuple[paths.Step, ...]

    @property
    def text(self) -> str:
        return paths.render(self.steps)


@dataclass(frozen=True, slots=True)
class Get:
    base: Node
    steps: tuple[paths.Step, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    col: int


@dataclass(frozen=True, slots=True)
class Not:
    arg: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Const | ListConst | Path | Get | Call | Not | BoolOp | Compare


# ---------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind: str, text: str | None = None) -> bool:
        t = self.toks[self.i]
        return t.kind == kind and (text is None or t.text == text)

    def expect(self, kind: str, text: str) -> Tok:
        t = self.next()
        if t.kind != kind or t.text != text:
            raise ExprError(f"expected {text!r}, got {t.text or 'end of expression'!r}", t.col)
        return t

    def enter(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nests deeper than {MAX_DEPTH} levels", col)

    def parse(self) -> Node:
        node = self.or_()
        t = self.peek()
        if t.kind != "end":
            raise ExprError(f"unexpected {t.text!r}", t.col)
        return node

    def or_(self) -> Node:
        args = [self.and_()]
        while self.at("name", "or"):
            self.next()
            args.append(self.and_())
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def and_(self) -> Node:
        args = [self.not_()]
        while self.at("name", "and"):
            self.next()
            args.append(self.not_())
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def not_(self) -> Node:
        if self.at("name", "not"):
            t = self.next()
            self.enter(t.col)
            node = Not(self.not_())
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        left = self.value()
        t = self.peek()
        op: str | None = None
        if t.kind == "op" and t.text in ("==", "!=", "<", "<=", ">", ">="):
            op = t.text
            self.next()
        elif t.kind == "name" and t.text == "in":
            op = "in"
            self.next()
        elif t.kind == "name" and t.text == "not" and self.toks[self.i + 1].text == "in":
            op = "not in"
            self.i += 2
        if op is None:
            return left
        right = self.value()
        nxt = self.peek()
        if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
            raise ExprError("comparisons do not chain; combine them with 'and'", nxt.col)
        return Compare(op, left, right)

    def value(self) -> Node:
        node = self.primary()
        steps: list[paths.Step] = []
        while True:
            if self.at("op", "."):
                self.next()
                t = self.next()
                if t.kind != "name" or t.text in KEYWORDS:
                    raise ExprError(f"expected a field name after '.', got {t.text or 'end'!r}", t.col)
                steps.append(t.text)
            elif self.at("op", "["):
                self.next()
                t = self.next()
                if t.kind == "str":
                    steps.append(t.value)
                elif t.kind == "num" and isinstance(t.value, int):
                    steps.append(t.value)
                else:
                    raise ExprError("[...] takes a quoted key or a whole number", t.col)
                self.expect("op", "]")
            else:
                break
        if not steps:
            return node
        if isinstance(node, Path):
            return Path(node.steps + tuple(steps))
        if isinstance(node, Call):
            return Get(node, tuple(steps))
        raise ExprError("only fields and function results can be indexed")

    def primary(self) -> Node:
        t = self.next()
        if t.kind == "num" or t.kind == "str":
            return Const(t.value)
        if t.kind == "op" and t.text == "-":
            n = self.next()
            if n.kind != "num":
                raise ExprError("'-' must be followed by a number", t.col)
            return Const(-n.value)
        if t.kind == "op" and t.text == "(":
            self.enter(t.col)
            node = self.or_()
            self.expect("op", ")")
            self.depth -= 1
            return node
        if t.kind == "op" and t.text == "[":
            return self.list_literal(t)
        if t.kind == "name":
            if t.text in ("true", "false", "null"):
                return Const({"true": True, "false": False, "null": None}[t.text])
            if t.text in KEYWORDS:
                raise ExprError(f"unexpected {t.text!r}", t.col)
            if self.at("op", "("):
                return self.call(t)
            return Path((t.text,))
        raise ExprError(f"unexpected {t.text or 'end of expression'!r}", t.col)

    def list_literal(self, start: Tok) -> Node:
        values: list[Any] = []
        if self.at("op", "]"):
            self.next()
            return ListConst(())
        while True:
            item = self.primary()
            if not isinstance(item, Const):
                raise ExprError("a list literal holds only literals (strings, numbers, true, false, null)", start.col)
            values.append(item.value)
            if len(values) > MAX_LIST:
                raise ExprError(f"a list literal holds at most {MAX_LIST} items", start.col)
            if self.at("op", ","):
                self.next()
                continue
            self.expect("op", "]")
            return ListConst(tuple(values))

    def call(self, name: Tok) -> Node:
        if name.text not in FUNCTIONS:
            hint = difflib.get_close_matches(name.text, list(FUNCTIONS), 1)
            raise ExprError(
                f"unknown function {name.text!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" (functions: {', '.join(sorted(FUNCTIONS))})",
                name.col,
            )  # fmt: skip
        self.expect("op", "(")
        self.enter(name.col)
        args: list[Node] = []
        if not self.at("op", ")"):
            while True:
                args.append(self.or_())
                if self.at("op", ","):
                    self.next()
                    continue
                break
        self.expect("op", ")")
        self.depth -= 1
        spec = FUNCTIONS[name.text]
        if not spec.min_args <= len(args) <= spec.max_args:
            want = str(spec.min_args) if spec.min_args == spec.max_args else f"{spec.min_args}-{spec.max_args}"
            raise ExprError(f"{name.text}() takes {want} arguments, got {len(args)}", name.col)
        return Call(name.text, tuple(args), name.col)


def parse(src: str) -> Node:
    """Parse and validate field names; raises ExprError."""
    node = _Parser(tokenize(src)).parse()
    for p in fields_of(node):
        try:
            paths.validate(p.steps)
        except paths.PathError as exc:
            raise ExprError(str(exc)) from None
    return node


def fields_of(node: Node) -> list[Path]:
    out: list[Path] = []

    def walk(n: Node) -> None:
        if isinstance(n, Path):
            out.append(n)
        elif isinstance(n, Get):
            walk(n.base)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)
        elif isinstance(n, Not):
            walk(n.arg)
        elif isinstance(n, BoolOp):
            for a in n.args:
                walk(a)
        elif isinstance(n, Compare):
            walk(n.left)
            walk(n.right)

    walk(node)
    return out


def tables_of(node: Node) -> set[str]:
    """Lookup tables an expression names (for lint)."""
    out: set[str] = set()

    def walk(n: Node) -> None:
        if isinstance(n, Call):
            if n.name in ("lookup", "in_lookup") and n.args and isinstance(n.args[0], Const):
                out.add(str(n.args[0].value))
            for a in n.args:
                walk(a)
        elif isinstance(n, Get):
            walk(n.base)
        elif isinstance(n, Not):
            walk(n.arg)
        elif isinstance(n, BoolOp | Compare):
            for a in n.args if isinstance(n, BoolOp) else (n.left, n.right):
                walk(a)

    walk(node)
    return out


# ---------------------------------------------------------------------------- semantics
def _is_num(v: Any) -> bool:
    return (v.__class__ is int or v.__class__ is float) and v.__class__ is not bool


def eq(x: Any, c: Any) -> bool:
    if isinstance(c, list | tuple):
        return isinstance(x, list | tuple) and list(x) == list(c)
    if x.__class__ is list:
        return any(eq(e, c) for e in x)
    if x.__class__ is bool or c.__class__ is bool:
        return x is c
    return bool(x == c)


def member(x: Any, coll: Any) -> bool:
    if coll is None:
        return False
    if isinstance(coll, str):
        if isinstance(x, str):
            return x in coll
        if x.__class__ is list:
            return any(isinstance(e, str) and e in coll for e in x)
        return False
    if x.__class__ is list:
        return any(member(e, coll) for e in x)
    if isinstance(x, dict | list):
        return False
    if x.__class__ is bool:
        return any(e is x for e in coll)
    if isinstance(coll, dict | frozenset | set):
        return x in coll
    if isinstance(coll, list | tuple):
        return any(eq(x, e) for e in coll)
    return False


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def ordered(op: str) -> Callable[[Any, Any], bool]:
    cmp = _ORDER[op]

    def test(x: Any, c: Any) -> bool:
        if x.__class__ is list:
            return any(test(e, c) for e in x)
        if _is_num(x) and _is_num(c):
            return cmp(x, c)
        if isinstance(x, str) and isinstance(c, str):
            return cmp(x, c)
        return False

    return test


def truthy(v: Any) -> bool:
    return bool(v)


def _any_str(pred: Callable[[str], bool]) -> Callable[[Any], bool]:
    def test(x: Any) -> bool:
        if isinstance(x, str):
            return pred(x)
        if x.__class__ is list:
            return any(isinstance(e, str) and pred(e) for e in x)
        return False

    return test


_IP_CACHE: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None] = {}


def parse_ip(v: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    ip = _IP_CACHE.get(v, False)
    if ip is False:
        try:
            ip = ipaddress.ip_address(v)
        except ValueError:
            ip = None
        if len(_IP_CACHE) > 50_000:
            _IP_CACHE.clear()
        _IP_CACHE[v] = ip
    return ip  # type: ignore[return-value]  # False was replaced above


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[Any]) -> list[Network]:
    nets: list[Network] = []
    for v in values:
        if not isinstance(v, str):
            raise ExprError(f"a CIDR must be a string like '10.0.0.0/8', got {v!r}")
        try:
            nets.append(ipaddress.ip_network(v, strict=True))
        except ValueError as exc:
            hint = ""
            try:
                hint = f"; did you mean {str(ipaddress.ip_network(v, strict=False))!r}?"
            except ValueError:
                pass
            raise ExprError(f"bad CIDR {v!r}: {exc}{hint}") from None
    return nets


def in_networks(nets: Sequence[Network]) -> Callable[[Any], bool]:
    def one(x: str) -> bool:
        ip = parse_ip(x)
        if ip is None:
            return False
        return any(ip.version == n.version and ip in n for n in nets)

    return _any_str(one)


def compile_regex(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ExprError(f"a regular expression must be a string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExprError(f"bad regular expression {pattern!r}: {exc}") from None


def compile_globs(patterns: Sequence[Any], ignore_case: bool = False) -> re.Pattern[str]:
    parts: list[str] = []
    for p in patterns:
        if not isinstance(p, str):
            raise ExprError(f"a glob must be a string, got {p!r}")
        parts.append(fnmatch.translate(p))
    return re.compile("|".join(f"(?:{x})" for x in parts), re.IGNORECASE if ignore_case else 0)


# ---------------------------------------------------------------------------- functions
@dataclass(frozen=True)
class FnSpec:
    min_args: int
    max_args: int
    boolean: bool
    doc: str
    literal_args: tuple[int, ...] = field(default=())  # argument positions that must be literals


FUNCTIONS: dict[str, FnSpec] = {
    "lower": FnSpec(1, 1, False, "lower(x): lower-cased text (each element of a list)"),
    "upper": FnSpec(1, 1, False, "upper(x): upper-cased text"),
    "len": FnSpec(1, 1, False, "len(x): length of a text, list or map; 0 for null"),
    "startswith": FnSpec(2, 2, True, "startswith(x, prefix)"),
    "endswith": FnSpec(2, 2, True, "endswith(x, suffix)"),
    "contains": FnSpec(2, 2, True, "contains(x, text): substring test"),
    "matches": FnSpec(2, 2, True, 'matches(x, "regex"): regular-expression search', (1,)),
    "glob": FnSpec(2, 2, True, 'glob(x, "pattern"): shell-style match (* ? [..])', (1,)),
    "cidr": FnSpec(2, 2, True, 'cidr(ip, "10.0.0.0/8" or [..]): address inside a network', (1,)),
    "exists": FnSpec(1, 1, True, "exists(x): present and not empty"),
    "lookup": FnSpec(2, 2, False, 'lookup("table", key): the row for key, or null', (0,)),
    "in_lookup": FnSpec(2, 2, True, 'in_lookup("table", key): key is in the table', (0,)),
    "coalesce": FnSpec(1, 8, False, "coalesce(a, b, ...): the first value that is not null"),
}


def _const_arg(call: Call, pos: int) -> Any:
    arg = call.args[pos]
    if isinstance(arg, Const):
        return arg.value
    if isinstance(arg, ListConst):
        return list(arg.values)
    raise ExprError(f"argument {pos + 1} of {call.name}() must be a literal", call.col)


def _map_text(f: Callable[[str], str]) -> Callable[[Any], Any]:
    def g(x: Any) -> Any:
        if isinstance(x, str):
            return f(x)
        if x.__class__ is list:
            return [f(e) if isinstance(e, str) else e for e in x]
        return x

    return g


def _length(x: Any) -> int:
    return len(x) if isinstance(x, str | list | dict) else 0


def _exists(x: Any) -> bool:
    return x is not None and x != "" and x != [] and x != {}


def _lookup_row(lk: LookupSource, table: str, key: Any) -> Any:
    if isinstance(key, str):
        return lk.get(table, key)
    if key.__class__ is list:
        for k in key:
            if isinstance(k, str):
                row = lk.get(table, k)
                if row is not None:
                    return row
        return None
    if _is_num(key):
        return lk.get(table, str(key))
    return None


_TEXT_TESTS: dict[str, Callable[[str, str], bool]] = {
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": lambda s, sub: sub in s,
}


def _compile_call(call: Call) -> Fn:
    spec = FUNCTIONS[call.name]
    for pos in spec.literal_args:
        _const_arg(call, pos)
    name = call.name
    args = [compile_node(a) for a in call.args]
    a0 = args[0]
    if name in ("lower", "upper"):
        g = _map_text(str.lower if name == "lower" else str.upper)
        return lambda a, lk: g(a0(a, lk))
    if name == "len":
        return lambda a, lk: _length(a0(a, lk))
    if name == "exists":
        return lambda a, lk: _exists(a0(a, lk))
    if name in ("startswith", "endswith", "contains"):
        a1 = args[1]
        pred = _TEXT_TESTS[name]

        def text_test(a: Any, lk: LookupSource) -> bool:
            other = a1(a, lk)
            if not isinstance(other, str):
                return False
            x = a0(a, lk)
            if isinstance(x, str):
                return pred(x, other)
            if x.__class__ is list:
                return any(isinstance(e, str) and pred(e, other) for e in x)
            return False

        return text_test
    if name in ("matches", "glob"):
        pat = _const_arg(call, 1)
        rx = compile_regex(pat) if name == "matches" else compile_globs(pat if isinstance(pat, list) else [pat])
        search = rx.search if name == "matches" else rx.match
        test = _any_str(lambda s: search(s) is not None)
        return lambda a, lk: test(a0(a, lk))
    if name == "cidr":
        nets_arg = _const_arg(call, 1)
        nets = parse_networks(nets_arg if isinstance(nets_arg, list) else [nets_arg])
        inside = in_networks(nets)
        return lambda a, lk: inside(a0(a, lk))
    if name in ("lookup", "in_lookup"):
        table = _const_arg(call, 0)
        if not isinstance(table, str) or not table:
            raise ExprError(f"{name}() needs a table name as a string", call.col)
        k = args[1]
        if name == "lookup":
            return lambda a, lk: _lookup_row(lk, table, k(a, lk))
        return lambda a, lk: _lookup_row(lk, table, k(a, lk)) is not None
    if name == "coalesce":
        fs = tuple(args)

        def first(a: Any, lk: LookupSource) -> Any:
            for f in fs:
                v = f(a, lk)
                if v is not None:
                    return v
            return None

        return first
    raise ExprError(f"unknown function {name!r}", call.col)  # pragma: no cover - FUNCTIONS guards this


# ---------------------------------------------------------------------------- compiler
def compile_node(node: Node) -> Fn:
    if isinstance(node, Const):
        v = node.value
        return lambda a, lk: v
    if isinstance(node, ListConst):
        lst = list(node.values)
        return lambda a, lk: lst
    if isinstance(node, Path):
        g = paths.getter(node.steps)
        return lambda a, lk: g(a)
    if isinstance(node, Get):
        base = compile_node(node.base)
        steps = node.steps

        def get(a: Any, lk: LookupSource) -> Any:
            v = base(a, lk)
            for s in steps:
                v = paths.step(v, s)
                if v is None:
                    return None
            return v

        return get
    if isinstance(node, Call):
        return _compile_call(node)
    if isinstance(node, Not):
        f = compile_node(node.arg)
        return lambda a, lk: not f(a, lk)
    if isinstance(node, BoolOp):
        fs = [compile_node(x) for x in node.args]
        if node.op == "and":
            if len(fs) == 2:
                f1, f2 = fs
                return lambda a, lk: bool(f1(a, lk) and f2(a, lk))
            if len(fs) == 3:
                f1, f2, f3 = fs
                return lambda a, lk: bool(f1(a, lk) and f2(a, lk) and f3(a, lk))

            def all_of(a: Any, lk: LookupSource) -> bool:
                for f in fs:
                    if not f(a, lk):
                        return False
                return True

            return all_of
        if len(fs) == 2:
            f1, f2 = fs
            return lambda a, lk: bool(f1(a, lk) or f2(a, lk))

        def any_of(a: Any, lk: LookupSource) -> bool:
            for f in fs:
                if f(a, lk):
                    return True
            return False

        return any_of
    if isinstance(node, Compare):
        return _compile_compare(node)
    raise ExprError(f"cannot compile {node!r}")  # pragma: no cover


def _compile_compare(node: Compare) -> Fn:
    op = node.op
    left = compile_node(node.left)
    # Constant right-hand sides (the common case) are folded into the closure.
    if isinstance(node.right, Const | ListConst):
        c: Any = node.right.value if isinstance(node.right, Const) else list(node.right.values)
        if op in ("in", "not in") and isinstance(node.right, ListConst):
            hashable = all(not isinstance(v, bool) for v in node.right.values)
            coll: Any = frozenset(node.right.values) if hashable else c
            if op == "in":
                return lambda a, lk: member(left(a, lk), coll)
            return lambda a, lk: not member(left(a, lk), coll)
        if op == "==":
            if isinstance(c, str):
                return lambda a, lk: _eq_str(left(a, lk), c)
            return lambda a, lk: eq(left(a, lk), c)
        if op == "!=":
            return lambda a, lk: not eq(left(a, lk), c)
        if op in _ORDER:
            t = ordered(op)
            return lambda a, lk: t(left(a, lk), c)
    right = compile_node(node.right)
    if op == "==":
        return lambda a, lk: eq(left(a, lk), right(a, lk))
    if op == "!=":
        return lambda a, lk: not eq(left(a, lk), right(a, lk))
    if op == "in":
        return lambda a, lk: member(left(a, lk), right(a, lk))
    if op == "not in":
        return lambda a, lk: not member(left(a, lk), right(a, lk))
    t2 = ordered(op)
    return lambda a, lk: t2(left(a, lk), right(a, lk))


def _eq_str(x: Any, c: str) -> bool:
    if x.__class__ is str:
        return bool(x == c)
    if x.__class__ is list:
        return c in x
    return False


def is_boolean_valued(node: Node) -> bool:
    """True when the compiled closure already returns a bool (no wrapping needed)."""
    return isinstance(node, Compare | Not | BoolOp) or (
        isinstance(node, Call) and node.name not in ("lookup", "coalesce") and FUNCTIONS[node.name].boolean
    )


def is_boolean(node: Node) -> bool:
    if isinstance(node, Compare | Not | BoolOp):
        return True
    if isinstance(node, Const):
        return isinstance(node.value, bool)
    if isinstance(node, Call):
        return FUNCTIONS[node.name].boolean
    return False


@dataclass(frozen=True)
class Compiled:
    source: str
    node: Node
    fn: Fn
    reads: tuple[tuple[str, paths.Getter], ...] = ()

    def describe_values(self, alert: Any) -> str:
        """The fields the expression read, with their values: the 'why' of a match."""
        return ", ".join(f"{k}={_short(g(alert))}" for k, g in self.reads)


def _reads(node: Node) -> tuple[tuple[str, paths.Getter], ...]:
    seen: dict[str, paths.Getter] = {}
    for p in fields_of(node):
        if p.text not in seen:
            seen[p.text] = paths.getter(p.steps)
    return tuple(seen.items())


def compile_condition(src: str) -> Compiled:
    """Compile a condition; it must be boolean at its top (a comparison, and/or/not, or a test function)."""
    if not isinstance(src, str) or not src.strip():
        raise ExprError("an expression must be non-empty text")
    node = parse(src)
    if not is_boolean(node):
        raise ExprError(
            "an expression must be a condition (a comparison, and/or/not, or a test such as exists(x)); "
            "got a plain value"
        )
    f = compile_node(node)
    return Compiled(src, node, f if is_boolean_valued(node) else lambda a, lk: bool(f(a, lk)), _reads(node))


def compile_value(src: str) -> Compiled:
    """Compile an expression for its value (action templates)."""
    node = parse(src)
    return Compiled(src, node, compile_node(node), _reads(node))


def _short(v: Any, limit: int = 80) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def short(v: Any, limit: int = 80) -> str:
    return _short(v, limit)
