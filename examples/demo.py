"""`make demo`: the whole path tunelab has so far, on the bundled data, through the real CLI.

Each step prints the command it runs, so the demo doubles as a tour of what to type.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
TUNELAB = [sys.executable, "-m", "tunelab.cli"]


def tunelab(*args: str) -> dict:
    print(f"\n$ tunelab {shlex.join(args)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([*TUNELAB, *args, "--json"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"demo step failed (exit {done.returncode})")
    result = json.loads(done.stdout)
    print(f"  ({time.perf_counter() - started:.1f} s)")
    return result


def report_prepared(version: dict) -> None:
    for step in version["steps"]:
        detail = {k: v for k, v in step.items() if k in (
            "rows_changed", "removed", "clusters", "conflicting_clusters", "entities", "rows_with_pii", "carved",
            "exact", "near", "too_short", "too_long")}
        print(f"  {step['name']:<12} {step['rows_in']:>6,} -> {step['rows_out']:>6,}  {json.dumps(detail)}")
    print(f"  splits: {version['splits']}   card: {version['card']}")


def main() -> None:
    sms = tunelab("data", "import", str(HERE / "sms_spam" / "SMSSpamCollection"), "--name", "sms-spam",
                  "--map", "SMS=text", "--map", "Label=label")
    print(f"  {sms['rows']:,} rows as {sms['kind']} ({sms['detected']}), {sms['rejected']} rejected")
    report_prepared(tunelab("data", "prepare", "sms-spam", "--config", str(HERE / "sms_spam" / "prep.yaml")))

    support = tunelab("data", "import", str(HERE / "customer_support" / "customer_support.csv"),
                      "--name", "customer-support", "--map", "response=output")
    print(f"  {support['rows']:,} rows as {support['kind']} ({support['detected']}), {support['rejected']} rejected")
    report_prepared(tunelab("data", "prepare", "customer-support",
                            "--config", str(HERE / "customer_support" / "prep.yaml")))
    listed = tunelab("data", "list")
    print(f"  {len(listed['datasets'])} dataset versions in the workspace")


if __name__ == "__main__":
    main()
