"""Scan settings: refused when they cannot work; one transactional id per scope."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.scan.app import transactional_id
from services.scan.settings import AwsScanSettings, InventorySource, ScanSettings


def test_settings_that_cannot_work_are_refused_with_the_variable_to_set() -> None:
    with pytest.raises(ValidationError, match="12 digits"):
        AwsScanSettings(accounts={"1234": "short"})
    with pytest.raises(ValidationError, match="ALERTLINE_AWS__ACCOUNTS or ALERTLINE_AWS__ORGANIZATIONS"):
        ScanSettings(aws=AwsScanSettings(enabled=True))
    with pytest.raises(ValidationError, match="role_path"):
        AwsScanSettings(role_path="security")
    with pytest.raises(ValidationError, match="inventory source names"):
        ScanSettings(inventory={"a b": InventorySource(format="gcp-cai", uri="x")})


def test_runs_of_one_scope_share_a_transactional_id_and_other_scopes_do_not() -> None:
    s = ScanSettings(
        aws=AwsScanSettings(enabled=True, accounts={"111111111111": "prod"}),
        inventory={
            "gcp-org": InventorySource(format="gcp-cai", uri="s3://e/cai/"),
            "azure": InventorySource(format="azure-arg", uri="a.json"),
        },
    )
    everything = transactional_id(s, aws=True, inventory=True)
    assert everything == transactional_id(s, aws=True, inventory=True) == "alertline.scan.aws+azure+gcp-org"
    assert len({everything, transactional_id(s, True, False), transactional_id(s, False, True)}) == 3
