"""An invalid rule set at start-up fails fast, naming file:line and what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_the_service_refuses_to_start_with_invalid_rules(tmp_path: Path) -> None:
    (tmp_path / "10-rules.yaml").write_text(
        "rules:\n  - id: a\n    description: d\n    owner: o\n    match: {field: title, regex: '(x'}\n"
        "    actions: {priority: P1}\n"
    )
    env = os.environ | {
        "ALERTLINE_EVALUATE__RULES_DIR": str(tmp_path),
        # Nothing listens here: the service must fail on its rules before it touches Kafka.
        "ALERTLINE_KAFKA__BOOTSTRAP": "127.0.0.1:1",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from alertline.cli import main; main()", "run", "evaluate"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{tmp_path}/10-rules.yaml:5: error: bad regex '(x'" in proc.stderr
