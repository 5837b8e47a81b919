"""`qvllm loadtest [URL]`: Locust, headless, against the public URL; thresholds decide the exit code.

Before any load starts the URL is checked (absolute http(s), reachable, answers ``/v1/models``
like an OpenAI-compatible server, is not vLLM itself): a bad URL or a refused connection is one
``Error:`` line and exit code 1; wrong flags are click's usage error (exit code 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from qvllm.loadtest.profiles import CONSTANT_SECONDS, CONSTANT_USERS

LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtest" / "locustfile.py"
PREFLIGHT_TIMEOUT_S = 10.0


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


def check_target(url: str, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Make sure ``url`` is an OpenAI-compatible endpoint that answers, before any load starts.

    ``GET URL/v1/models`` must answer 200, or 401/403 (an API key is needed: the load test sends
    ``QVLLM_API_KEY``).

    Raises:
        click.BadParameter: not an absolute http(s) URL with a host.
        click.ClickException: refused, unreachable, timed out, or not answering ``/v1/models``.
    """
    import httpx

    from qvllm.qr import check_url

    try:
        check_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    models = url.rstrip("/") + "/v1/models"
    try:
        resp = httpx.get(models, timeout=timeout_s)
    except httpx.ConnectError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else (str(exc) or type(exc).__name__)
        raise click.ClickException(f"cannot connect to {url}: {reason}") from None
    except httpx.TimeoutException:
        raise click.ClickException(f"{models} did not answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc or type(exc).__name__}") from None
    if resp.status_code not in (200, 401, 403):
        raise click.ClickException(
            f"{models} answered HTTP {resp.status_code}: not an OpenAI-compatible endpoint "
            "(give the public URL (CloudFront) or the local gateway's)"
        )


def default_url() -> str | None:
    """The local stack's gateway URL when `qvllm local up` is running, else None."""
    from qvllm.local.state import read_state

    state = read_state()
    return state.urls.get("gateway") if state and state.pids else None


def locust_command(url: str, *, profile: str, users: int | None, seconds: float | None, max_tokens: int | None,
                   ignore_eos: bool, model: str, p95_s: float | None, max_failure_ratio: float,
                   summary_json: str | None, csv_prefix: str | None, ttft_p95_s: float | None = None,
                   itl_p95_s: float | None = None) -> list[str]:
    """The ``python -m locust ...`` argv for a headless run (None: the profile's default)."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url.rstrip("/"),
            "--only-summary", "--stop-timeout", "60", "--load-profile", profile,
            "--max-failure-ratio", str(max_failure_ratio)]
    if max_tokens is not None:
        argv += ["--max-tokens", str(max_tokens)]
    if p95_s is not None:
        argv += ["--p95-s", str(p95_s)]
    if ttft_p95_s is not None:
        argv += ["--ttft-p95-s", str(ttft_p95_s)]
    if itl_p95_s is not None:
        argv += ["--itl-p95-s", str(itl_p95_s)]
    if profile == "constant":
        argv += ["--constant-users", str(users or CONSTANT_USERS), "--constant-seconds", str(seconds or CONSTANT_SECONDS)]
    if ignore_eos:
        argv.append("--ignore-eos")
    if model:
        argv += ["--model", model]
    if summary_json:
        argv += ["--summary-json", summary_json]
    if csv_prefix:
        argv += ["--csv", csv_prefix]
    return argv


POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)


@click.command(name="loadtest")
@click.argument("url", required=False)
@click.option("--profile", type=click.Choice(["demo", "short", "queue", "constant"]), default="short", show_default=True,
              help="demo: 5 -> 150 users over 30 min; short: 2 min; queue: 16 users with 256-token answers for "
                   "90 s (requests wait on the local stack: watch the dashboard); constant: --users for --seconds.")
@click.option("--users", type=click.IntRange(min=1), help=f"Users of the constant profile (default: {CONSTANT_USERS}).")
@click.option("--seconds", type=click.FloatRange(min=1),
              help=f"Duration of the constant profile, seconds (default: {CONSTANT_SECONDS:g}).")
@click.option("--max-tokens", type=click.IntRange(min=1), help="max_tokens per request (default: the profile's; 50).")
@click.option("--ignore-eos", is_flag=True, help="Ask vLLM to generate all max tokens (steady load).")
@click.option("--model", default="", help="Served model name (default: learned from /v1/models).")
@click.option("--p95", "p95_s", type=POSITIVE_SECONDS,
              help="End-to-end p95 limit, seconds (default: the profile's; 20).")
@click.option("--ttft-p95", "ttft_p95_s", type=POSITIVE_SECONDS, help="TTFT p95 limit, seconds (default: none).")
@click.option("--itl-p95", "itl_p95_s", type=POSITIVE_SECONDS,
              help="Inter-token latency p95 limit, seconds (default: none).")
@click.option("--max-failures", "max_failure_ratio", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Failure ratio limit (0..1).")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary as JSON here.")
@click.option("--csv", "csv_prefix", help="CSV prefix: Locust's <prefix>_stats.csv ... and <prefix>_latency.csv "
                                          "(end-to-end, TTFT, ITL p50/p95).")
@click.option("--allow-direct-vllm", is_flag=True, help="Allow a URL that is vLLM itself (not the public path).")
def command(url: str | None, profile: str, users: int | None, seconds: float | None, max_tokens: int | None,
            ignore_eos: bool, model: str, p95_s: float | None, ttft_p95_s: float | None, itl_p95_s: float | None,
            max_failure_ratio: float, summary_json: str | None, csv_prefix: str | None,
            allow_direct_vllm: bool) -> None:
    """Run the load test against URL: the public URL (CloudFront) or the local stack's gateway."""
    if profile != "constant" and (users is not None or seconds is not None):
        raise click.UsageError("--users and --seconds apply to --profile constant only")
    for path, hint in ((summary_json, "--summary-json"), (csv_prefix, "--csv")):
        if path and not Path(path).expanduser().resolve().parent.is_dir():
            raise click.BadParameter(f"folder {Path(path).parent} does not exist", param_hint=hint)
    url = url or default_url()
    if not url:
        raise click.UsageError("give the public URL (CloudFront) or start the local stack (`qvllm local up`)")
    check_target(url)
    if not allow_direct_vllm and looks_like_vllm(url):
        raise click.UsageError(
            f"{url} answers like vLLM itself (/version): aim at the public URL (CloudFront) or the gateway, "
            "or pass --allow-direct-vllm"
        )
    argv = locust_command(url, profile=profile, users=users, seconds=seconds, max_tokens=max_tokens,
                          ignore_eos=ignore_eos, model=model, p95_s=p95_s, max_failure_ratio=max_failure_ratio,
                          summary_json=summary_json, csv_prefix=csv_prefix, ttft_p95_s=ttft_p95_s,
                          itl_p95_s=itl_p95_s)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sys.exit(subprocess.call(argv, env=env))
