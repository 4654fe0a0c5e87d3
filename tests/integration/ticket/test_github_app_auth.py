"""Authenticating as a GitHub App installation (JWT -> installation token, renewed before expiry)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry

from devtools.github_fake import FakeGitHub
from services.ticket.adapters.github import GitHubMetrics, GitHubTracker
from services.ticket.app import github_client, limiter_of, login_of
from services.ticket.domain import CreateIssue
from services.ticket.settings import GitHubSettings
from services.ticket.text import Marker

REPO = "acme/security-alerts"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    return private, public


def test_the_service_writes_as_the_apps_bot_and_renews_its_token(fake: FakeGitHub) -> None:
    private, public = keypair()
    fake.add_app(4242, public, slug="alertline", installation_id=77, token_ttl_s=21)  # PyGithub renews 20 s early
    gs = GitHubSettings(api_url=fake.url, repository=REPO, app_id=4242, installation_id=77, app_private_key=private)
    gh = github_client(gs)
    login = login_of(gs, gh)
    assert login == "alertline[bot]"
    t = GitHubTracker(gh, login, limiter_of(gs), GitHubMetrics(CollectorRegistry()))
    m = Marker(identity="id-1")
    t.create(CreateIssue(REPO, m, "t", f"{m.render()}\nb", ("alertline",)))
    assert fake.issues(REPO)[0].user.login == "alertline[bot]"
    time.sleep(1.2)
    assert t.get(REPO, 1) is not None
    assert fake.counters["app:tokens"] == 2, "the installation token was renewed before it expired"
    fresh = GitHubTracker(github_client(gs), login, limiter_of(gs), GitHubMetrics(CollectorRegistry()))
    found = fresh.find(REPO, m, datetime.now(UTC) - timedelta(minutes=5))
    assert found is not None and found.number == 1, "creator=<slug>[bot] finds the App's issues"


def test_a_jwt_signed_with_another_key_is_refused(fake: FakeGitHub) -> None:
    _private, public = keypair()
    other, _ = keypair()
    fake.add_app(1, public)
    gs = GitHubSettings(api_url=fake.url, repository=REPO, app_id=1, installation_id=1, app_private_key=other)
    from alertline.errors import Transient

    with pytest.raises(Transient, match="401"):
        login_of(gs, github_client(gs))
