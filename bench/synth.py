"""Benchmark `make bench-synth`: wall time of a full `cdk synth` and of the CDK app's test suite.

Each is run ``--runs`` times (default 3) as a subprocess, exactly as a user runs it; the script
prints every run and the median, in seconds. Nothing is asserted: the figures are for
reading and comparing.

    .venv/bin/python bench/synth.py [--runs 3] [--tests tests/stacks] [--skip-tests]

- synth: ``node_modules/.bin/cdk synth --quiet -o <tmp>`` with the default config (cdk-nag on),
  a fresh output directory each run;
- tests: ``python -m pytest <tests> -q -p no:cacheprovider`` (default: ``tests/stacks``, the
  app's stack, snapshot, cfn-lint, cdk-nag and config tests; pass ``--tests tests`` for the
  whole suite).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("JSII_NODE", str(REPO_ROOT / "node_modules" / ".bin" / "node"))
    env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    env.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    return env


def timed(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd`` in the repo root; return (wall time in seconds, exit code).

    A failing run is still timed; the tail of its output goes to stderr.
    """
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-2000:])
    return elapsed, result.returncode


def measure(label: str, make_cmd, runs: int) -> tuple[float, bool]:
    """Time ``make_cmd(i)`` ``runs`` times, print each run and the median.

    Returns:
        (median seconds, True if every run exited 0).
    """
    times, ok = [], True
    for i in range(runs):
        seconds, code = timed(make_cmd(i))
        times.append(seconds)
        ok = ok and code == 0
        status = "" if code == 0 else f"  (FAILED, exit {code})"
        print(f"  {label} run {i + 1}/{runs}: {seconds:7.2f} s{status}", flush=True)
    median = statistics.median(times)
    print(f"{label}: median {median:.2f} s over {runs} runs (min {min(times):.2f}, max {max(times):.2f})"
          + ("" if ok else "  -- some runs FAILED"), flush=True)
    return median, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tests", default="tests/stacks", help="pytest target (default: tests/stacks)")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args(argv)

    cdk = str(REPO_ROOT / "node_modules" / ".bin" / "cdk")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        print(f"full synth ({cdk} synth --quiet, default config, cdk-nag on)")
        synth, synth_ok = measure(
            "synth", lambda i: [cdk, "synth", "--quiet", "--no-notices", "-o", f"{tmp}/cdk.out.{i}"], args.runs
        )
    results = {"synth_s": synth}
    ok = synth_ok
    if not args.skip_tests:
        print(f"test suite (pytest {args.tests})")
        results["tests_s"], tests_ok = measure(
            "tests", lambda i: [python, "-m", "pytest", args.tests, "-q", "-p", "no:cacheprovider"], args.runs
        )
        ok = ok and tests_ok
    print("summary: " + ", ".join(f"{k}={v:.2f}" for k, v in results.items()) + ("" if ok else " (with failures)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
