"""The fault suite's short run (``bench/faults.py --short``) as a test: reconnect storms with
resends at five drop points, SIGTERM and SIGKILL mid-answer, malformed frames on both sockets,
against a real server process. Asserts the invariants of issue #12's defects 1, 5 and 8:
nothing lost, nothing duplicated, no traceback, no crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_faults_short_nothing_lost_duplicated_or_crashed(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "faults.py"),
            "--short",
            "--only",
            "storms,kills,malformed",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())

    storms = report["storms"]
    assert storms["lost"] == 0 and storms["duplicated"] == 0, storms
    for drop, row in storms["drop_points"].items():
        assert row["conversations"] > 0, drop

    kills = report["kills"]
    for name in ("sigterm", "sigkill"):
        assert kills[name]["lost"] == 0 and kills[name]["duplicated"] == 0, kills[name]
    assert kills["database"]["lost"] == 0 and kills["database"]["duplicated"] == 0, kills
    assert set(kills["sigterm"]["close_codes"]) == {"1012"}, kills["sigterm"]
    assert kills["tracebacks"] == 0

    malformed = report["malformed"]
    assert malformed["tracebacks"] == 0 and malformed["crashes"] == 0, malformed
    assert malformed["internal_error"] == 0 and malformed["still_answers"], malformed
