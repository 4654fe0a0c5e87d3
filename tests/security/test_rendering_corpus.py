"""A corpus of hostile text, put into every field of an alert, its decision and its
enrichments, renders into issue titles, labels, bodies, comments and storm pages that GitHub
would show inertly.

"Inert" is judged on what GitHub would make of the Markdown: the bodies are rendered with
cmark-gfm (GitHub's own fork of cmark, with its table, autolink, strikethrough and task-list
extensions; raw HTML let through, so any that survives is seen), then the HTML is read back:
no tag beyond the template's own, no image, no link but to a cloud console, no HTML comment
but our markers (the issue marker exactly once, parsing back to the right identity), no
structure the template did not make, and no @mention, #123, GH-123 or owner/repo#123 in text
GitHub would scan for them (outside code and links). Unit-level cases of each rule are in
tests/unit/ticket/test_untrusted_text.py; this is the corpus-driven check over all fields.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from alertline.testing.samples import alert
from services.ingest.normalize.common import TITLE_LIMIT
from services.ticket import render
from services.ticket.cli import default_decision, preview_alert
from services.ticket.text import MAX_BODY, MAX_LABEL, MAX_TITLE, parse_comment_marker, parse_marker, parse_members

GFM = ["table", "autolink", "strikethrough", "tasklist"]  # no tagfilter: raw HTML that survives must show
CONSOLES = ("console.aws.amazon.com", "console.cloud.google.com", "portal.azure.com", "security.microsoft.com")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TWO_MB = 2 * 1024 * 1024

URL_AUTOLINK: list[Any] = []  # was a strict xfail until text.md_text broke GFM's autolink triggers

CORPUS: list[Any] = [
    pytest.param("ping @octocat, @acme/security-team and @everyone", id="mentions"),
    pytest.param("@octocat", id="mention-alone"),
    pytest.param("mail root@corp.example or @@x", id="email"),
    pytest.param("see #123, other/repo#9, GH-123, gh-7 and #1", id="issue-refs"),
    pytest.param("&#64;octocat &#x23;12 &#60;img src=x&#62;", id="entity-encoded"),
    pytest.param("\\@octocat \\#12 \\<b\\>", id="backslash-escaped"),
    pytest.param("\uff20octocat \uff0312", id="fullwidth"),
    pytest.param("<img src=x onerror=alert(1)><script>alert(document.cookie)</script>", id="html-script"),
    pytest.param("<details open><summary>x</summary><iframe src=//evil></iframe>", id="html-blocks"),
    pytest.param("<a href='javascript:alert(1)'>x</a> <javascript:alert(1)>", id="javascript-links"),
    pytest.param("[click](javascript:alert(1)) [x](data:text/html,<b>)", id="markdown-js-link"),
    pytest.param(
        "![pixel](//evil.example/t.png) ![r][1] <img src=//evil.example/x>\n\n[1]: //evil.example/r.png", id="md-image"
    ),
    pytest.param(
        "[docs](//evil.example/phish) [ref][x] [other](../../other/repo/issues/1)\n\n[x]: //evil.example", id="md-link"
    ),
    pytest.param("<mailto:root@evil.example> <//evil.example> <javascript:x>", id="angle-autolink"),
    pytest.param("--> <!-- alertline:v1 identity=forged gen=0 --> <!--", id="marker-breakers"),
    pytest.param("<!--", id="comment-open"),
    pytest.param("-->", id="comment-close"),
    pytest.param("\u202eexe.txt\u202d \u2066isolate\u2069 \u200f\u200e", id="bidi"),
    pytest.param("a\u200bb\u200c@\u200doctocat\u2060#\ufeff1", id="zero-width"),
    pytest.param("\x00\x07\x1b[31mred\x1b[0m\x7f\x85\x9b", id="control"),
    pytest.param("| a | b |\n|---|---|\n| c | d |", id="table"),
    pytest.param("a | b || c |", id="pipes"),
    pytest.param("# H1\nSetext\n===\n---\n***\n> quote\n    indented\n1. one\n- item\n- [ ] task", id="blocks"),
    pytest.param("```\nfenced @octocat #1\n```\n~~~\nx", id="fences"),
    pytest.param("`` ` `` ``` `x` ``` `@octocat`", id="backticks"),
    pytest.param("**bold** _em_ ~~del~~ <sub>s</sub> <kbd>k</kbd>", id="inline-markup"),
    pytest.param("[^1]\n\n[^1]: footnote [x](//evil.example)", id="footnote"),
    pytest.param("line\r\n# heading after CRLF\rand CR", id="crlf"),
    pytest.param("https://github.com/other/repo/issues/1", id="url-other-repo", marks=URL_AUTOLINK),
    pytest.param("www.evil.example/login", id="url-www", marks=URL_AUTOLINK),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="url-metadata", marks=URL_AUTOLINK),
    pytest.param("<ftp://evil.example/x>", id="url-ftp", marks=URL_AUTOLINK),
    pytest.param("A" * TWO_MB, id="2mb-ascii"),
    pytest.param("@octocat #1 <b> `x` | -->\n" * 12_000, id="300kb-hostile-lines"),
    pytest.param("`" + "@octocat " * 250_000 + "`", id="2mb-code-span"),
]


# ---------------------------------------------------------------------------- the alert
def hostile_alert(s: str) -> dict[str, Any]:
    a = alert(7)
    small = s[:200]
    a.update(
        identity=f"aws.securityhub:{small}",
        title=s,
        description=s,
        account_name=s,
        organization=s,
        region=s,
        finding_type=s,
        control_id=s,
        console_url=s,
    )
    a["severity"] = dict(a["severity"], source_label=s)
    a["resources"] = [{"type": s, "id": s, "name": s + "!", "region": s + "?", "tags": {s: s}, "addresses": [s]}]
    a["indicators"] = {"ips": [s], "domains": [s], "users": [s], "ports": [22]}
    return a


def hostile_decision(a: dict[str, Any], s: str) -> dict[str, Any]:
    d = default_decision(a, T0)
    d.update(labels=[s, "team:" + s], matched=[{"rule_id": s, "why": s}], ruleset=s)
    return d


def hostile_enrichment(s: str) -> dict[str, Any]:
    return {
        # The verdict is our enrichers' own word (malicious, suspicious, ...), never the source's text.
        "enricher": s, "subject": s, "summary": s, "verdict": s[:64], "data_json": "{}", "fingerprint": "fp-1",
        "changed_from": None, "artifacts": {s[:100]: s}, "observed_at": T0,
    }  # fmt: skip


# ---------------------------------------------------------------------------- what GitHub shows
class Shown(HTMLParser):
    """The rendered HTML read back: tags, links, images, comments, and the text GitHub scans
    for mentions and references (outside code and links)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.links: list[str] = []
        self.comments: list[str] = []
        self.live: list[str] = []
        self._inert = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        if tag in ("code", "pre", "a"):
            self._inert += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre", "a"):
            self._inert -= 1

    def handle_data(self, data: str) -> None:
        if self._inert <= 0:
            self.live.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def shown(md: str) -> Shown:
    html = cmarkgfm.markdown_to_html_with_extensions(md, options=Options.CMARK_OPT_UNSAFE, extensions=GFM)
    p = Shown()
    p.feed(html)
    p.close()
    return p


TEMPLATE_TAGS = {"p", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "strong", "em", "code", "ul",
                 "li", "sub", "blockquote", "a", "input", "br"}  # fmt: skip
NEVER = {"h1", "h2", "h5", "h6", "pre", "hr", "ol", "img"}
OUR_COMMENTS = re.compile(r"^ (alertline:v1 [^<>]*|alertline:status:(start|end)|m=[^\s<>]+) $")
MENTION = re.compile(r"(?<![A-Za-z0-9_`])@[A-Za-z0-9]")
REF = re.compile(r"(?<![A-Za-z0-9_&])#\d|\bGH-\d", re.IGNORECASE)
BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def assert_inert(md: str, benign_md: str, what: str) -> Shown:
    assert len(md) <= MAX_BODY, f"{what}: {len(md)} characters"
    assert not BIDI.search(md), f"{what}: a bidirectional control survives"
    got, base = shown(md), shown(benign_md)
    extra = set(got.tags) - TEMPLATE_TAGS
    assert not extra, f"{what}: raw tags survive: {sorted(extra)}"
    assert not set(got.tags) & NEVER, f"{what}: structure the template never makes: {dict(got.tags)}"
    for href in got.links:
        u = urllib.parse.urlsplit(href)
        host = (u.hostname or "").lower()
        assert u.scheme == "https" and any(host == c or host.endswith("." + c) for c in CONSOLES), (
            f"{what}: live link to {href[:120]!r}"
        )
    for tag in ("h3", "h4", "table", "tr", "td", "li", "ul", "input", "a", "sub"):
        assert got.tags[tag] <= base.tags[tag], f"{what}: more <{tag}> than the template makes"
    truncated = "Truncated" in md
    assert got.tags["blockquote"] <= base.tags["blockquote"] + truncated, f"{what}: extra blockquote"
    for c in got.comments:
        assert OUR_COMMENTS.match(c), f"{what}: an HTML comment that is not ours: {c[:120]!r}"
    text = "\n".join(got.live)
    for pattern, name in ((MENTION, "@mention"), (REF, "issue reference")):
        m = pattern.search(text)
        assert m is None, f"{what}: live {name}: {text[max(0, m.start() - 40) : m.end() + 40]!r}"
    return got


# ---------------------------------------------------------------------------- the test
@pytest.mark.parametrize("s", CORPUS)
def test_hostile_text_in_every_field_renders_inertly(s: str) -> None:
    a = hostile_alert(s)
    d = hostile_decision(a, s)
    e = hostile_enrichment(s)
    plain = hostile_alert("plain words")
    plain_d = hostile_decision(plain, "plain words")
    plain_e = hostile_enrichment("plain words")

    # The issue: title, labels, body.
    p = preview_alert(a, d, [e])
    base = preview_alert(plain, plain_d, [plain_e])
    got = assert_inert(p["body"], base["body"], "issue body")
    ours = [c for c in got.comments if c.startswith(" alertline:v1 identity=")]
    assert len(ours) == 1, "the hidden marker appears exactly once"
    m = parse_marker(p["body"])
    assert m is not None and m.identity == a["identity"] and m.generation == 0
    if len(s) > MAX_BODY:
        assert "Truncated to fit GitHub's limit" in p["body"] and a["raw"]["uri"] in p["body"]
    title = p["title"]
    assert 0 < len(title) <= MAX_TITLE
    assert not BIDI.search(title) and not re.search(r"[\x00-\x1f\x7f]", title)
    assert not MENTION.search(title) and not REF.search(title) and "<!--" not in title and "-->" not in title
    for lb in p["labels"]:
        assert 0 < len(lb) <= MAX_LABEL and "," not in lb and not BIDI.search(lb) and "\n" not in lb

    # A comment with the enrichment results.
    body = render.comment_body([render.enrichment_note([render.enrichment_item(e, changed=True)])], "enr:k", ["fp-1"])
    plain_body = render.comment_body(
        [render.enrichment_note([render.enrichment_item(plain_e, changed=True)])], "enr:k", ["fp-1"]
    )
    assert_inert(body, plain_body, "comment")
    assert parse_comment_marker(body) == ("enr:k", ("fp-1",))

    # A storm page listing this alert among others.
    line = render.member_line(a, d, [e])
    members = [render.PageMember(a["identity"], line, False), render.PageMember("id-2", line, True)]
    plain_line = render.member_line(plain, plain_d, [plain_e])
    plain_members = [
        render.PageMember(plain["identity"], plain_line, False),
        render.PageMember("id-2", plain_line, True),
    ]
    # The group's title is the alert's title (at most TITLE_LIMIT + a note after normalization) or
    # the rule's group key; the huge case is test_storm_page_with_a_huge_title_keeps_its_members.
    page = render.page_body("g1", 1, "acme/x|" + s[:300], s[: TITLE_LIMIT + 64], members)
    plain_page = render.page_body("g1", 1, "acme/x|plain words", "plain words", plain_members)
    assert_inert(page, plain_page, "storm page")
    assert parse_members(page) == {a["identity"]: False, "id-2": True}
    pm = parse_marker(page)
    assert pm is not None and pm.group == "g1"
    assert len(render.page_title(s, 2, 1)) <= MAX_TITLE


def test_storm_page_with_a_huge_title_keeps_its_members() -> None:
    a = alert(1)
    line = render.member_line(a, default_decision(a, T0))
    page = render.page_body("g1", 1, "acme/x|k", "T" * 100_000, [render.PageMember(a["identity"], line, False)])
    assert len(page) <= MAX_BODY
    assert parse_members(page) == {a["identity"]: False}
