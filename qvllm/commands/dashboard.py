"""`qvllm dashboard`: the live terminal UI."""

from __future__ import annotations

import click


@click.command(name="dashboard")
@click.option("--metrics-url", help="Prometheus text URL: vLLM /metrics or the collector's :8889/metrics "
              "(default: the local stack's engines, each scraped, added up).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Read pods, nodes, NodeClaims, HPA and events.")
@click.option("--context", help="kubeconfig context.")
@click.option("--namespace", default=None, help="Namespace of vLLM (default: the app's).")
@click.option("--scaled-object", type=click.Path(exists=True, dir_okay=False),
              help="ScaledObject YAML for the desired-replica math (default: the cluster's, else the config's).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="App config YAML: its ScaledObject (when the cluster has none) and "
                   "cluster.hpa_sync_period_seconds for the reaction times.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              help="Seconds between scrapes.")
@click.option("--once", is_flag=True,
              help="No live view: scrape twice, --interval apart (rates are between two scrapes), print the "
                   "panels as plain text and exit; exit code 1 when the metrics could not be scraped.")
def command(metrics_url, kubeconfig, context, namespace, scaled_object, config_file, interval, once) -> None:  # type: ignore[no-untyped-def]
    """Live view: throughput, queue, desired vs current replicas, latency, pods and GPU nodes."""
    from app_config.constants import INFERENCE_NAMESPACE
    from qvllm.commands.scale_math import load_spec
    from qvllm.dashboard.app import DashboardApp
    from qvllm.dashboard.data.kube import KubeSource
    from qvllm.dashboard.data.local import LocalEngines
    from qvllm.dashboard.data.sources import Poller
    from qvllm.local.state import read_state

    local = None
    if not metrics_url:
        state = read_state()
        if state is None or not state.pids or not state.engines:
            raise click.UsageError("give --metrics-url (vLLM /metrics or the collector's :8889) or run `qvllm local up`")
        local = LocalEngines()
    config, spec = load_spec(config_file, scaled_object)
    kube = KubeSource(kubeconfig, context, namespace or INFERENCE_NAMESPACE) if kubeconfig else None
    poller = Poller(metrics_url, spec, config.cluster.hpa_sync_period_seconds, kube, local=local)
    if once:
        _print_once(poller.poll, interval)
        return
    DashboardApp(poller.poll, interval).run()


def _plain(markup: str) -> str:
    from rich.errors import MarkupError
    from rich.text import Text

    try:
        return Text.from_markup(markup).plain
    except MarkupError:  # a scrape error quoting brackets, e.g. an IPv6 address
        return markup


def _print_once(poll, interval_s: float) -> None:  # type: ignore[no-untyped-def]
    """Two scrapes ``interval_s`` apart, then the panels' texts, without Textual markup.

    Raises:
        click.ClickException: the metrics could not be scraped (the panels are printed first).
    """
    import time

    from qvllm.dashboard.widgets.panels import PANEL_TEXTS

    poll()
    time.sleep(interval_s)
    snap = poll()
    click.echo("\n\n".join(_plain(text(snap)) for text in PANEL_TEXTS))
    if snap.metrics is None:
        raise click.ClickException(snap.error or "no metrics")
