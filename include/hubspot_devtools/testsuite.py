"""`make test`: the suite in two streams at once — the end-to-end tests beside everything else.

The end-to-end tests (real Airflow, a browser, a one-minute deadline) spend most of their time
waiting on a scheduler; the rest spends it computing. Run one after the other they take about ten
minutes on two cores; side by side, well under. Each stream is a plain pytest session with its own
report; the two reports are merged into ``var/test-report.json`` (what ``.ci/run`` checks), and the
exit status is the worse of the two. Extra arguments go to both sessions (e.g. ``-k``, a path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hubspot_devtools.local import REPO

VAR = REPO / "var"
REST_NICENESS = 10  # the computing stream yields the CPU to the end-to-end stream's servers
NO_TESTS_COLLECTED = 5  # pytest's exit status when a stream has nothing to run (e.g. a path filter)


def pytest_command(marker: str, args: list[str]) -> list[str]:
    # The slowest tests of each stream at the end of its output: where the suite's minutes go.
    return [sys.executable, "-m", "pytest", "-m", marker, "--durations=15", *args]


def merge_reports(paths: list[Path], into: Path) -> dict:
    """One report from the streams' reports: outcomes summed per bucket, the worst exit status."""
    merged: dict = {"exitstatus": 0, "outcomes": {}}
    for path in paths:
        report = json.loads(path.read_text())
        status = report["exitstatus"]
        merged["exitstatus"] = max(merged["exitstatus"], 0 if status == NO_TESTS_COLLECTED else status)
        for bucket, counts in report["outcomes"].items():
            target = merged["outcomes"].setdefault(bucket, {})
            for outcome, n in counts.items():
                target[outcome] = target.get(outcome, 0) + n
    into.write_text(json.dumps(merged, indent=2))
    return merged


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    VAR.mkdir(parents=True, exist_ok=True)
    e2e_log, reports = VAR / "test-e2e.log", {"e2e": VAR / "test-report-e2e.json", "rest": VAR / "test-report-rest.json"}
    for path in reports.values():
        path.unlink(missing_ok=True)
    started = time.monotonic()
    print(f"== end-to-end tests in the background (output: {e2e_log.relative_to(REPO)}), the rest here", flush=True)
    with e2e_log.open("w") as out:
        e2e = subprocess.Popen(pytest_command("e2e", args), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "HUBSPOT_SYNC_TEST_REPORT": str(reports["e2e"])})
        # The rest computes; the end-to-end tests wait on schedulers, deadlines and start-up: they go first.
        rest = subprocess.run(pytest_command("not e2e", args), cwd=REPO, preexec_fn=lambda: os.nice(REST_NICENESS),
                              env={**os.environ, "HUBSPOT_SYNC_TEST_REPORT": str(reports["rest"])})
        if e2e.poll() is None:
            print(f"== waiting for the end-to-end tests ({time.monotonic() - started:.0f} s so far)", flush=True)
        e2e.wait()
    print(f"== end-to-end tests ({e2e_log.relative_to(REPO)}):", flush=True)
    print(e2e_log.read_text(errors="replace"), flush=True)
    missing = [name for name, path in reports.items() if not path.exists()]
    if missing:
        print(f"== no report from the {', '.join(missing)} stream: it did not finish", flush=True)
        return max(rest.returncode, e2e.returncode, 1)
    merged = merge_reports(list(reports.values()), VAR / "test-report.json")
    print(f"== both streams done in {time.monotonic() - started:.0f} s: {merged['outcomes']}", flush=True)
    return merged["exitstatus"]


if __name__ == "__main__":
    sys.exit(main())
