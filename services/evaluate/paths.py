"""Field paths into an alert (``severity.score``, ``resources.tags.team``,
``status_raw["Workflow.Status"]``) and their compiled accessors.

A path that crosses a list (``resources``, ``indicators.ips``) yields a list of every value
found (flattened one level); a missing field yields ``None``. Accessors only ever index
dicts and lists: nothing here touches Python attributes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

Getter = Callable[[Any], Any]
Step = str | int

MAP = "map"  # any key below this field
_LEAF = "leaf"

# The alert's shape (schemas/alert.avsc), for validating paths at compile time.
ALERT_FIELDS: dict[str, Any] = {
    "identity": _LEAF,
    "source_id": _LEAF,
    "revision": _LEAF,
    "provider": _LEAF,
    "product": _LEAF,
    "account": _LEAF,
    "account_name": _LEAF,
    "organization": _LEAF,
    "region": _LEAF,
    "resources": {
        "type": _LEAF,
        "id": _LEAF,
        "name": _LEAF,
        "region": _LEAF,
        "tags": MAP,
        "addresses": _LEAF,
    },
    "title": _LEAF,
    "description": _LEAF,
    "finding_type": _LEAF,
    "severity": {"label": _LEAF, "score": _LEAF, "source_label": _LEAF, "source_score": _LEAF},
    "status": _LEAF,
    "status_raw": MAP,
    "first_seen": _LEAF,
    "updated_at": _LEAF,
    "updated_at_raw": _LEAF,
    "received_at": _LEAF,
    "clock_skew": _LEAF,
    "indicators": {"ips": _LEAF, "domains": _LEAF, "users": _LEAF, "ports": _LEAF},
    "control_id": _LEAF,
    "console_url": _LEAF,
    "raw": {"uri": _LEAF, "sha256": _LEAF, "index": _LEAF},
    "attributes": MAP,
    "labels": MAP,
}


class PathError(ValueError):
    pass


def parse_path(text: str) -> list[Step]:
    """Parse ``a.b["c.d"].e`` / ``a.b[0]`` into steps."""
    steps: list[Step] = []
    i, n = 0, len(text)
    if not text:
        raise PathError("empty field path")
    expect_name = True
    while i < n:
        c = text[i]
        if c == "[":
            j = text.find("]", i)
            if j < 0:
                raise PathError(f"unclosed '[' in field path {text!r}")
            inner = text[i + 1 : j].strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                steps.append(inner[1:-1])
            elif inner.isdigit():
                steps.append(int(inner))
            else:
                raise PathError(f"[...] in a field path takes a quoted key or a number, got {inner!r}")
            i = j + 1
            expect_name = False
        elif c == ".":
            if expect_name:
                raise PathError(f"unexpected '.' in field path {text!r}")
            i += 1
            expect_name = True
        else:
            if not expect_name:
                raise PathError(f"expected '.' or '[' in field path {text!r} at {i}")
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_-"):
                j += 1
            name = text[i:j]
            if not name:
                raise PathError(f"unexpected {c!r} in field path {text!r}")
            check_name(name)
            steps.append(name)
            i = j
            expect_name = False
    if expect_name:
        raise PathError(f"field path {text!r} ends with '.'")
    return steps


def check_name(name: str) -> None:
    if name.startswith("_") or "__" in name:
        raise PathError(f"names may not start with '_' or contain '__': {name!r}")


def validate(steps: Sequence[Step]) -> None:
    """Reject paths that cannot exist in an alert, with a suggestion."""
    node: Any = ALERT_FIELDS
    for pos, step in enumerate(steps):
        if node is MAP:
            node = _LEAF
            continue
        if node is _LEAF:
            if isinstance(step, int):
                continue
            raise PathError(f"{render(steps[:pos])} has no field {step!r}")
        if isinstance(step, int):
            continue  # list index: resources[0]
        if step not in node:
            hint = difflib.get_close_matches(step, list(node), 1)
            where = f"{render(steps[:pos])} has" if pos else "an alert has"
            raise PathError(f"{where} no field {step!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        node = node[step]


def is_multi(steps: Sequence[Step]) -> bool:
    """True when the path can yield a list (it crosses resources or an indicators list)."""
    if not steps:
        return False
    if steps[0] == "indicators":
        return True
    if steps[0] != "resources":
        return False
    if len(steps) > 1 and isinstance(steps[1], int):  # one resource: only its addresses are a list
        return len(steps) > 2 and steps[2] == "addresses"
    return True


def render(steps: Sequence[Step]) -> str:
    out = ""
    for s in steps:
        if isinstance(s, int):
            out += f"[{s}]"
        elif s.replace("_", "a").replace("-", "a").isalnum():
            out += ("." if out else "") + s
        else:
            out += f'["{s}"]'
    return out


def step(value: Any, key: Step) -> Any:
    cls = value.__class__
    if cls is dict:
        return value.get(key)
    if isinstance(key, int):
        if cls is list and -len(value) <= key < len(value):
            return value[key]
        return None
    if cls is list:
        out: list[Any] = []
        for e in value:
            if e.__class__ is dict:
                v = e.get(key)
                if v.__class__ is list:
                    out.extend(v)
                elif v is not None:
                    out.append(v)
        return out
    if isinstance(value, dict):
        return value.get(key)
    return None


def getter(steps: Sequence[Step]) -> Getter:
    """A closure reading ``steps`` from a dict; specialised for the short paths rules use most."""
    if len(steps) == 1 and isinstance(steps[0], str):
        k = steps[0]

        def get1(a: Any) -> Any:
            return a.get(k)

        return get1
    if len(steps) == 2 and isinstance(steps[0], str) and isinstance(steps[1], str):
        k1, k2 = steps

        def get2(a: Any) -> Any:
            v = a.get(k1)
            if v.__class__ is dict:
                return v.get(k2)
            return step(v, k2)

        return get2
    if len(steps) == 3 and all(isinstance(x, str) for x in steps):
        s1, s2, s3 = steps

        def get3(a: Any) -> Any:
            v = a.get(s1)
            if v is None:
                return None
            v = step(v, s2)
            if v is None:
                return None
            return step(v, s3)

        return get3
    fixed = tuple(steps)

    def get_n(a: Any) -> Any:
        v = a
        for s in fixed:
            v = step(v, s)
            if v is None:
                return None
        return v

    return get_n
