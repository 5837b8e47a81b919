"""`qvllm loadtest [URL]`: Locust, headless, against the public URL; thresholds decide the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtest" / "locustfile.py"


def looks_like_vllm(url: str, timeout: float = 5.0) -> bool:
    """True when ``URL/version`` answers like vLLM's own API server (``{"version": ...}``).

    The gateway (and CloudFront in front of it) does not serve ``/version``; a load test
    aimed there would bypass admission control, heartbeats and the edge.
    """
    import httpx

    try:
        resp = httpx.get(url.rstrip("/") + "/version", timeout=timeout)
        return resp.status_code == 200 and "version" in resp.json()
    except (httpx.HTTPError, ValueError):
        return False


def default_url() -> str | None:
    """The local stack's gateway URL when `qvllm local up` is running, else None."""
    from qvllm.local.state import read_state

    state = read_state()
    return state.urls.get("gateway") if state else None


def locust_command(url: str, *, profile: str, users: int | None, seconds: float | None, max_tokens: int,
                   ignore_eos: bool, model: str, p95_s: float, max_failure_ratio: float,
                   summary_json: str | None, csv_prefix: str | None) -> list[str]:
    """The ``python -m locust ...`` argv for a headless run."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url.rstrip("/"),
            "--only-summary", "--stop-timeout", "60", "--load-profile", profile, "--max-tokens", str(max_tokens),
            "--p95-s", str(p95_s), "--max-failure-ratio", str(max_failure_ratio)]
    if profile == "constant":
        argv += ["--constant-users", str(users or 4), "--constant-seconds", str(seconds or 30)]
    if ignore_eos:
        argv.append("--ignore-eos")
    if model:
        argv += ["--model", model]
    if summary_json:
        argv += ["--summary-json", summary_json]
    if csv_prefix:
        argv += ["--csv", csv_prefix]
    return argv


@click.command(name="loadtest")
@click.argument("url", required=False)
@click.option("--profile", type=click.Choice(["demo", "short", "constant"]), default="short", show_default=True,
              help="demo: 5 -> 150 users over 30 min; short: 2 min; constant: --users for --seconds.")
@click.option("--users", type=click.IntRange(min=1), help="Users of the constant profile.")
@click.option("--seconds", type=click.FloatRange(min=1), help="Duration of the constant profile.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--ignore-eos", is_flag=True, help="Ask vLLM to generate all max tokens (steady load).")
@click.option("--model", default="", help="Served model name (default: learned from /v1/models).")
@click.option("--p95", "p95_s", type=float, default=20.0, show_default=True, help="p95 limit, seconds.")
@click.option("--max-failures", "max_failure_ratio", type=float, default=0.15, show_default=True,
              help="Failure ratio limit (0..1).")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary as JSON here.")
@click.option("--csv", "csv_prefix", help="Locust CSV stats prefix.")
@click.option("--allow-direct-vllm", is_flag=True, help="Allow a URL that is vLLM itself (not the public path).")
def command(url: str | None, profile: str, users: int | None, seconds: float | None, max_tokens: int,
            ignore_eos: bool, model: str, p95_s: float, max_failure_ratio: float, summary_json: str | None,
            csv_prefix: str | None, allow_direct_vllm: bool) -> None:
    """Run the load test against URL: the public URL (CloudFront) or the local stack's gateway."""
    url = url or default_url()
    if not url:
        raise click.UsageError("give the public URL (CloudFront) or start the local stack (`qvllm local up`)")
    if not allow_direct_vllm and looks_like_vllm(url):
        raise click.UsageError(
            f"{url} answers like vLLM itself (/version): aim at the public URL (CloudFront) or the gateway, "
            "or pass --allow-direct-vllm"
        )
    argv = locust_command(url, profile=profile, users=users, seconds=seconds, max_tokens=max_tokens,
                          ignore_eos=ignore_eos, model=model, p95_s=p95_s, max_failure_ratio=max_failure_ratio,
                          summary_json=summary_json, csv_prefix=csv_prefix)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sys.exit(subprocess.call(argv, env=env))
