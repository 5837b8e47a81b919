"""Dashboard widgets driven by Textual's pilot on recorded metrics and Kubernetes API JSON."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from textual.widgets import DataTable, Static

from qvllm.dashboard.app import DashboardApp
from qvllm.dashboard.data.kube import kube_snapshot
from qvllm.dashboard.data.prom import ParsedMetrics, snapshot
from qvllm.dashboard.data.sources import DashboardSnapshot, build_snapshot
from qvllm.scaling import ScalingSpec
from tests.cli.conftest import load_json

NOW = datetime(2026, 11, 29, 10, 3, 0, tzinfo=timezone.utc)


def _kube():
    return kube_snapshot(load_json("kube/pods.json"), load_json("kube/events.json"), load_json("kube/nodes.json"),
                         load_json("kube/nodeclaims.json"), load_json("kube/hpas.json"),
                         load_json("kube/scaledobjects.json"), NOW)


def _snap(data_dir, name: str, kube=None, previous: str | None = None) -> DashboardSnapshot:
    parsed = ParsedMetrics.from_text((data_dir / name).read_text())
    prev = ParsedMetrics.from_text((data_dir / previous).read_text()) if previous else None
    spec = ScalingSpec.from_scaled_object(kube.scaled_object) if kube else ScalingSpec.from_scaled_object(
        load_json("kube/scaledobjects.json")["items"][0])
    return build_snapshot(0, snapshot(parsed, prev, 10.0 if prev else None), parsed, spec, kube)


def _text(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_panels_show_recorded_cluster_state(data_dir):
    snaps = iter([_snap(data_dir, "vllm_metrics_queue.txt", _kube())])
    app = DashboardApp(lambda: next(snaps), interval_s=3600)
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        queue = _text(app, "#queue")
        assert "running 2" in queue and "waiting 10" in queue and "vllm:kv_cache_usage_perc" in queue
        replicas = _text(app, "#replicas")
        # desired by the math (composite 102 -> 5) beside the HPA's current 3; B04 per-pod label
        assert "desired 5" in replicas and "current 3" in replicas
        assert "1.334 per pod (1334m) x 3 pods" in replicas and "target 25 per pod" in replicas
        pods = app.query_one("#pods", DataTable)
        assert pods.row_count == 2
        assert [str(c) for c in pods.get_row_at(0)] == [
            "vllm-7c9d8b6f5d-4xkqz", "ip-10-0-3-41.us-west-2.compute.internal", "Running",
            "48.0 s", "91.0 s", "93.0 s", "177.0 s"]
        assert [str(c) for c in pods.get_row_at(1)][3:] == ["52.0 s", "n/a", "n/a", "n/a"]
        nodes = app.query_one("#nodes", DataTable)
        rows = [[str(c) for c in nodes.get_row_at(i)] for i in range(nodes.row_count)]
        assert ["ip-10-0-3-41.us-west-2.compute.internal", "g6e.xlarge", "spot", "33 min", "yes"] in rows
        assert rows[-1][0] == "gpu-fghij (g6.xlarge)" and rows[-1][3] == "launching"


async def test_b09_kv_cache_shows_na_not_zero(data_dir, tmp_path):
    text = (data_dir / "vllm_metrics_queue.txt").read_text()
    stripped = tmp_path / "no_kv.txt"
    stripped.write_text("\n".join(line for line in text.splitlines() if "kv_cache_usage_perc" not in line) + "\n")
    snap = _snap(tmp_path, "no_kv.txt")
    app = DashboardApp(lambda: snap, interval_s=3600)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        queue = _text(app, "#queue")
        assert "KV cache n/a" in queue and "0.0%" not in queue


async def test_refresh_key_polls_again_and_updates_rates(data_dir):
    """Pressing r polls again; the second snapshot has rates and latency from buckets."""
    snaps = iter([_snap(data_dir, "vllm_metrics_idle.txt"),
                  _snap(data_dir, "vllm_metrics_after.txt", previous="vllm_metrics_idle.txt")])
    app = DashboardApp(lambda: next(snaps), interval_s=3600)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "requests/s n/a" in _text(app, "#throughput")
        assert "TTFT  p50 n/a" in _text(app, "#latency")
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "requests/s n/a" not in _text(app, "#throughput")
        latency = _text(app, "#latency")
        assert "TTFT  p50 n/a" not in latency and " s  p95 " in latency
        assert app.query_one("#running-spark").data is not None


async def test_scrape_error_is_shown(data_dir):
    snap = DashboardSnapshot(0, None, "http://127.0.0.1:9/metrics: connection refused", {}, None, 1)
    app = DashboardApp(lambda: snap, interval_s=3600)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "connection refused" in _text(app, "#throughput")
        assert "n/a" in _text(app, "#replicas")


# Every panel the dashboard shows (the KV cache line lives in #queue, the time-to-ready phases in #pods).
PANELS = ("#throughput", "#latency", "#queue", "#running-spark", "#waiting-spark", "#replicas", "#pods", "#nodes")


def _assert_panels_on_screen(app, size: tuple[int, int], when: str) -> None:
    width, height = size
    assert app.screen.scroll_y == 0, f"{when}: the screen scrolled"
    for selector in PANELS:
        widget = app.query_one(selector)
        geometry = app.screen.find_widget(widget)
        region = geometry.region
        assert region.width > 0 and region.height > 0, f"{when}: {selector} has no size: {region}"
        assert region.x >= 0 and region.right <= width, f"{when}: {selector} off screen: {region}"
        assert region.y >= 1 and region.bottom <= height - 1, f"{when}: {selector} under header/footer: {region}"
        assert geometry.visible_region == region, f"{when}: {selector} clipped: {geometry.visible_region} of {region}"


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_every_panel_fits_the_screen(data_dir, size):
    """Regression: the top panels were scrolled off above the header (region y=-3) in a real terminal."""
    snap = _snap(data_dir, "vllm_metrics_queue.txt", _kube())
    app = DashboardApp(lambda: snap, interval_s=3600)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.has_class("-short" if size[1] < 36 else "-tall")
        _assert_panels_on_screen(app, size, "after data")
        # whole panel text is shown (no wrapped-away or clipped lines): auto height == rendered lines
        for selector in ("#throughput", "#latency", "#queue", "#replicas"):
            widget = app.query_one(selector, Static)
            assert widget.content_region.height == widget.get_content_height(
                widget.content_region.size, widget.content_region.size, widget.content_region.width)
        assert app.query_one("#pods", DataTable).row_count == 2
        for step in range(3):  # focus moves between the tables; neither may scroll the screen
            await pilot.press("tab")
            await pilot.pause()
            assert isinstance(app.focused, DataTable)
            _assert_panels_on_screen(app, size, f"after tab {step + 1} (focus {app.focused.id})")
