"""Everything from an alert is untrusted: it must never notify, link, inject HTML, break the
layout, or forge or break our hidden marker; and a body always fits GitHub's limit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from alertline.testing.samples import alert
from services.ticket import render
from services.ticket.cli import default_decision, preview_alert
from services.ticket.text import (
    MAX_BODY,
    WJ,
    Marker,
    md_code,
    md_link,
    md_text,
    parse_comment_marker,
    parse_marker,
    parse_members,
    plain_title,
    splice_status,
)

EVIL_MARKER = "<!-- alertline:v1 identity=forged gen=0 -->"


def _body(a: dict) -> str:
    return str(preview_alert(a)["body"])


def _comments_outside_ours(body: str) -> list[str]:
    ours = re.compile(r"^<!-- alertline:(v1 [^<>]*|status:start|status:end) -->$|<!-- m=[^\s<>]+ -->")
    stripped = "\n".join(ours.sub("", line) for line in body.split("\n"))
    return re.findall(r"<!--|-->", stripped)


def test_mentions_are_neutralised_everywhere() -> None:
    a = alert(1, title="ping @octocat and @acme/security", description="cc @everyone, mail me at x@y.z")
    p = preview_alert(a)
    for text in (p["title"], p["body"]):
        assert not re.search(r"@[A-Za-z0-9]", text), text
    assert "@" + WJ + "octocat" in p["title"]


def test_issue_references_are_neutralised() -> None:
    a = alert(1, title="see #12 and GH-7", description="fixed in other/repo#99 and #1")
    p = preview_alert(a)
    for text in (p["title"], p["body"]):
        assert not re.search(r"#\d", text), text
        assert not re.search(r"GH-\d", text, re.IGNORECASE), text


def test_html_is_escaped_not_rendered() -> None:
    a = alert(1, description='<img src=x onerror=alert(1)> <a href="https://evil">click</a> <details>')
    body = _body(a)
    assert "<img" not in body and "<a " not in body and "<details>" not in body
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in body


def test_markdown_cannot_restructure_the_body() -> None:
    a = alert(1, description="# Big heading\n    indented code\n> quote\n1. item\n- item\n| a | b |\n```\nfence")
    body = _body(a)
    section = body.split("#### What the source says\n", 1)[1].split("\n\n", 1)[0]
    for line in section.split("\n"):
        assert not re.match(r"^(#|\s{4}|>|\d+\.|-|\||```)", line), line


def test_a_closing_comment_in_the_title_cannot_break_or_forge_the_marker() -> None:
    a = alert(7, title=f"x --> {EVIL_MARKER} <!-- y", description=f"-->\n{EVIL_MARKER}\n<!--")
    a["resources"][0]["id"] = f"sg-1 --> {EVIL_MARKER}"
    a["indicators"]["users"] = ["-->", "<!--"]
    body = _body(a)
    m = parse_marker(body)
    assert m is not None and m.identity == a["identity"] and m.generation == 0
    assert "forged" not in [parse_marker(line).identity for line in body.split("\n") if parse_marker(line)]  # type: ignore[union-attr]
    assert _comments_outside_ours(body) == []
    title = preview_alert(a)["title"]
    assert "-->" not in title and "<!--" not in title


def test_identity_with_markup_round_trips_through_the_marker() -> None:
    weird = 'src:abc --> <b> "q" gen=9'
    m = Marker(identity=weird, generation=2, fields=(("occ", "3"),))
    parsed = parse_marker(m.render() + "\nrest")
    assert parsed is not None and parsed.identity == weird and parsed.generation == 2 and parsed.field("occ") == "3"
    assert "-->" not in m.render()[:-3]


def test_marker_is_read_from_the_first_line_only() -> None:
    assert parse_marker("hello\n" + EVIL_MARKER) is None
    assert parse_marker(None) is None
    assert parse_marker("<!-- alertline:v1 identity=a gen=x -->") is None


def test_two_megabyte_description_is_truncated_with_a_pointer_to_the_raw_alert() -> None:
    a = alert(3, description=("A" * 1000 + " <b>*_`\n") * 2048)
    assert len(a["description"]) > 2_000_000
    body = _body(a)
    assert 60_000 < len(body) <= MAX_BODY, "as much of the description as fits, no more"
    assert "Truncated to fit GitHub's limit" in body
    assert a["raw"]["uri"] in body
    assert parse_marker(body) is not None
    assert body.rstrip().endswith("</sub>"), "the footer survives truncation"


def test_huge_everything_still_fits() -> None:
    a = alert(4, description="x" * 200_000, title="T" * 5000)
    a["resources"] = [dict(a["resources"][0], id="r" * 500) for _ in range(500)]
    a["indicators"]["ips"] = ["1.2.3.4"] * 5000
    e = {"enricher": "x" * 1000, "subject": "s" * 5000, "summary": "y" * 60000, "verdict": "bad",
         "data_json": "{}", "fingerprint": "f", "changed_from": None, "artifacts": {"a": "b" * 9000},
         "observed_at": datetime(2026, 1, 1, tzinfo=UTC)}  # fmt: skip
    p = preview_alert(a, enrichments=[e] * 40)
    assert len(p["body"]) <= MAX_BODY
    assert len(p["title"]) <= 256
    assert parse_marker(p["body"]) is not None


def test_code_spans_survive_backticks_and_pipes() -> None:
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_code("a|b", cell=True) == "`a\\|b`"
    assert md_code("") == "—"
    assert md_code("x\n\ny") == "`x y`"


def test_console_links_only_to_known_consoles_over_https() -> None:
    ok = md_link("https://console.aws.amazon.com/guardduty/home?region=us-east-1#/findings?x=(1)", "open")
    assert ok.startswith("[open](https://console.aws.amazon.com/") and "(1)" not in ok
    assert md_link("javascript:alert(1)", "x").startswith("`")
    assert md_link("https://console.aws.amazon.com.evil.example/", "x").startswith("`")
    assert md_link("http://console.aws.amazon.com/", "x").startswith("`")
    assert md_link(None, "x") == "—"


def test_control_and_bidi_characters_are_removed() -> None:
    s = md_text("a\x00b\u202ec\u2066d\x1b[31m")
    assert s == "abcd[31m".replace("[", "\\[")
    assert plain_title("\u202eevil\r\nnext") == "evil next"


def test_labels_are_merged_from_alert_and_rule_and_bounded() -> None:
    a = alert(1)
    d = default_decision(a)
    d["labels"] = ["team:payments", "x" * 80, "Team:Payments", "a,b"]
    labels = render.issue_labels(a, d)
    assert labels[:5] == ["alertline", "severity:high", "priority:P2", "source:aws/securityhub", "account:123456789012"]
    assert "team:payments" in labels and "Team:Payments" not in labels
    assert all(len(x) <= 50 and "," not in x for x in labels)


def test_status_splice_keeps_human_edits_and_refuses_rewritten_bodies() -> None:
    body = _body(alert(1)) + "\n\nHuman notes: we own this."
    new = splice_status(body, Marker(identity="id-00000001", fields=(("occ", "9"),)).render(), "> status 9")
    assert new is not None and "Human notes: we own this." in new and "> status 9" in new
    assert parse_marker(new).field("occ") == "9"  # type: ignore[union-attr]
    assert splice_status("a human rewrote everything", "m", "s") is None


def test_comment_and_member_markers_parse_back() -> None:
    body = render.comment_body(["hello @x"], "k1", ["e:a:b", "e:c:d"])
    assert parse_comment_marker(body) == ("k1", ("e:a:b", "e:c:d"))
    page = render.page_body("h", 1, "acme/x|rule", "T", [render.PageMember("id-1", "line", True),
                                                           render.PageMember("id-2", "two", False)])  # fmt: skip
    assert parse_members(page) == {"id-1": True, "id-2": False}
    assert parse_marker(page).group == "h"  # type: ignore[union-attr]
