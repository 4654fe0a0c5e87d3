"""Untrusted text → safe GitHub Markdown, and the hidden markers only this service writes.

Everything that comes from an alert is untrusted. The rules, in the order applied:
1. control characters and bidirectional overrides are removed (no hidden or reordered text);
2. ``&``, ``<`` and ``>`` become HTML entities in prose, so no HTML (and no ``<!--`` / ``-->``,
   which could hide text or forge a marker) survives; in code spans, where entities would show
   literally, ``<!--`` and ``-->`` are broken with a WORD JOINER (U+2060) instead;
3. Markdown punctuation that could start or end structure is backslash-escaped;
4. ``@mention``, ``#123``, ``GH-123`` and ``owner/repo#123`` are neutralised with a WORD JOINER,
   so nobody is notified and nothing is cross-linked because an alert said so.

Markers are HTML comments on the body's first line; they are parsed from the first line only,
and only ever from issues our own login created, so alert text cannot forge one.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

WJ = "\u2060"  # WORD JOINER: invisible, unbreakable, and not part of a mention or reference
MAX_BODY = 65536  # GitHub's limit on issue and comment bodies
MAX_TITLE = 256
MAX_LABEL = 50

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
_REF = re.compile(r"#(?=\d)")
_GH_REF = re.compile(r"\b(GH)-(?=\d)", re.IGNORECASE)
_MD_INLINE = re.compile(r"([\\`*_{}\[\]()!|~#])")
_LINE_START = re.compile(r"^(\s*\d*)([-+=.)])", re.MULTILINE)


class Md(str):
    """Text that is already safe Markdown (our own, or escaped). Templates print it as-is."""

    __slots__ = ()


def clean(s: str) -> str:
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROL.sub("", s)


# GFM's autolink extension turns bare http://, https://, ftp:// and www. into live links; a word
# joiner inside the trigger keeps an attacker's URL (or a link that would cross-reference another
# repository's issue) as plain text.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)(:)(//)|\b(www)(\\?\.)")


def _break_autolinks(s: str) -> str:
    return _AUTOLINK.sub(lambda m: f"{m[1]}{WJ}{m[2]}{m[3]}" if m[1] else f"{m[4]}{WJ}{m[5]}", s)


def _neutralise(s: str) -> str:
    s = _break_autolinks(s)
    s = _MENTION.sub("@" + WJ, s)
    s = _REF.sub("#" + WJ, s)
    return _GH_REF.sub(lambda m: m.group(1) + WJ + "-", s)


def _break_comments(s: str) -> str:
    return s.replace("<!--", "<!" + WJ + "--").replace("-->", "--" + WJ + ">")


def md_text(s: str, *, inline: bool = False) -> Md:
    """Prose: entities for HTML, backslashes for Markdown, neutralised mentions and references.

    ``inline`` folds newlines into spaces (titles, table cells, list items)."""
    s = clean(s)
    if inline:
        s = " ".join(s.split())
    else:
        # Leading spaces would make an indented code block; runs of blank lines are noise.
        s = "\n".join(line.strip() for line in s.split("\n"))
        s = re.sub(r"\n{3,}", "\n\n", s).strip("\n")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_INLINE.sub(r"\\\1", s)
    s = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s)
    return Md(_neutralise(s))


def md_cell(s: str) -> Md:
    """Prose inside a table cell: inline, and pipes already escaped by ``md_text``."""
    return md_text(s, inline=True)


def md_code(s: str, *, cell: bool = False, limit: int = 200) -> Md:
    """An inline code span holding ``s`` literally (no Markdown, mentions or references inside).

    The fence is one backtick longer than the longest run inside, as CommonMark requires.
    In a table cell a pipe must be escaped even inside code (GFM)."""
    s = " ".join(clean(s).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    if not s:
        return Md("—")
    s = _break_comments(s)
    if cell:
        s = s.replace("|", "\\|")
    run = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (run + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return Md(f"{fence}{pad}{s}{pad}{fence}")


def plain_title(s: str, limit: int = MAX_TITLE) -> str:
    """An issue title: plain text (GitHub does not render Markdown there, but links references)."""
    s = " ".join(clean(s).split())
    s = _neutralise(_break_comments(s))
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s or "(untitled alert)"


def label(s: str) -> str:
    s = " ".join(clean(s).split()).replace(",", " ")
    return s[:MAX_LABEL].strip()


_CONSOLE_HOSTS = ("console.aws.amazon.com", "console.cloud.google.com", "portal.azure.com", "security.microsoft.com")


def md_link(url: str | None, text: str) -> Md:
    """A link only to a known cloud console over https; anything else is shown as code."""
    if not url:
        return Md("—")
    parts = urllib.parse.urlsplit(clean(url).strip())
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not any(host == h or host.endswith("." + h) for h in _CONSOLE_HOSTS):
        return md_code(url, cell=True)
    safe = urllib.parse.quote(urllib.parse.urlunsplit(parts), safe=":/?#[]@!$&'*+,;=%-._~")
    safe = safe.replace("(", "%28").replace(")", "%29").replace("|", "%7C")
    return Md(f"[{md_text(text, inline=True)}]({safe})")


# ---------------------------------------------------------------------------- markers
_KEY_SAFE = ":._-/@+="


def _enc(v: str) -> str:
    return urllib.parse.quote(v, safe=_KEY_SAFE)


@dataclass(frozen=True)
class Marker:
    """What the first line of one of our issues says about it."""

    identity: str | None = None  # an alert's issue
    generation: int = 0
    group: str | None = None  # a storm page: the group's hash key
    page: int = 0
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Index key: which issue this is, whatever its status fields say."""
        if self.group is not None:
            return f"group={self.group}#{self.page}"
        return f"identity={self.identity}#{self.generation}"

    def field(self, name: str) -> str | None:
        return dict(self.fields).get(name)

    def render(self) -> Md:
        if self.group is not None:
            head = f"group={_enc(self.group)} page={self.page}"
        else:
            head = f"identity={_enc(self.identity or '')} gen={self.generation}"
        extra = "".join(f" {k}={_enc(v)}" for k, v in self.fields)
        return Md(f"<!-- alertline:v1 {head}{extra} -->")


_MARKER = re.compile(r"^<!-- alertline:v1 ((?:[a-z_]+=[^\s<>]* ?)+)-->$")


def parse_marker(body: str | None) -> Marker | None:
    """The marker on the first line of ``body``, or None. Never looks past the first line."""
    if not body:
        return None
    first = body.split("\n", 1)[0].rstrip("\r")
    m = _MARKER.match(first)
    if not m:
        return None
    kv: dict[str, str] = {}
    for part in m.group(1).split():
        k, _, v = part.partition("=")
        kv[k] = urllib.parse.unquote(v)
    try:
        if "group" in kv:
            rest = tuple((k, v) for k, v in kv.items() if k not in ("group", "page"))
            return Marker(group=kv["group"], page=int(kv.get("page", "0")), fields=rest)
        if "identity" in kv:
            rest = tuple((k, v) for k, v in kv.items() if k not in ("identity", "gen"))
            return Marker(identity=kv["identity"], generation=int(kv.get("gen", "0")), fields=rest)
    except ValueError:
        return None
    return None


def comment_marker(key: str, fps: tuple[str, ...] = ()) -> Md:
    extra = f" fps={_enc(','.join(fps))}" if fps else ""
    return Md(f"<!-- alertline:v1 comment={_enc(key)}{extra} -->")


_COMMENT_RE = re.compile(r"<!-- alertline:v1 comment=([^\s<>]+)(?: fps=([^\s<>]*))? -->")


def parse_comment_marker(body: str | None) -> tuple[str, tuple[str, ...]] | None:
    """(key, enrichment fingerprints) of one of our comments (its marker is its last line)."""
    if not body:
        return None
    last = body.rstrip().rsplit("\n", 1)[-1]
    m = _COMMENT_RE.fullmatch(last)
    if not m:
        return None
    fps = tuple(x for x in urllib.parse.unquote(m.group(2) or "").split(",") if x)
    return urllib.parse.unquote(m.group(1)), fps


def comment_key_of(body: str | None) -> str | None:
    parsed = parse_comment_marker(body)
    return parsed[0] if parsed else None


MEMBER_RE = re.compile(r"^- \[([ xX])\] (.*) <!-- m=([^\s<>]+) -->$")


def member_marker(identity: str) -> Md:
    return Md(f"<!-- m={_enc(identity)} -->")


def parse_members(body: str | None) -> dict[str, bool]:
    """Task-list lines of a storm page: member identity -> ticked."""
    out: dict[str, bool] = {}
    for line in (body or "").split("\n"):
        m = MEMBER_RE.match(line.rstrip("\r"))
        if m:
            out[urllib.parse.unquote(m.group(3))] = m.group(1) != " "
    return out


STATUS_START = "<!-- alertline:status:start -->"
STATUS_END = "<!-- alertline:status:end -->"


def splice_status(body: str, marker: Md, status: str) -> str | None:
    """Replace the marker line and the status section of one of our bodies, keeping whatever a
    human wrote elsewhere. None when the body no longer has our structure (a human rewrote it)."""
    if parse_marker(body) is None:
        return None
    i, j = body.find(STATUS_START), body.find(STATUS_END)
    if i < 0 or j < i:
        return None
    rest = body.split("\n", 1)[1] if "\n" in body else ""
    i, j = rest.find(STATUS_START), rest.find(STATUS_END)
    return f"{marker}\n{rest[: i + len(STATUS_START)]}\n{status}\n{rest[j:]}"
