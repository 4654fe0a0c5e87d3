"""GeoIP/ASN from a MaxMind .mmdb file (written by the test, read by the maxminddb package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertline.errors import ConfigError
from services.enrich.app import open_mmdb
from services.enrich.engine import Task
from services.enrich.enrichers import GeoIp
from tests.unit.enrich.mmdb_writer import write


def test_country_and_asn_come_from_the_database(tmp_path: Path) -> None:
    db = tmp_path / "geo.mmdb"
    write(str(db), {
        "185.220.101.0/24": {"country": {"iso_code": "DE"}, "autonomous_system_number": 60729,
                             "autonomous_system_organization": "Stiftung Erneuerbare Freiheit"},
        "198.51.100.0/25": {"country": {"iso_code": "JP"}},
    })  # fmt: skip
    geo = GeoIp(open_mmdb(str(db)))
    f = geo.run(Task("geoip", "185.220.101.7"), 0)
    assert f.summary == "185.220.101.7: DE, AS60729, Stiftung Erneuerbare Freiheit"
    assert f.data == {"ip": "185.220.101.7", "country": "DE", "asn": 60729, "as_org": "Stiftung Erneuerbare Freiheit"}
    assert geo.run(Task("geoip", "198.51.100.9"), 0).data["country"] == "JP"
    assert geo.run(Task("geoip", "198.51.100.200"), 0).summary == "198.51.100.200: not in the GeoIP database"


def test_unreadable_database_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(ConfigError, match="cannot be opened"):
        open_mmdb(str(bad))
    with pytest.raises(ConfigError):
        open_mmdb(str(tmp_path / "missing.mmdb"))
