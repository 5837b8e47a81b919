"""The Textual dashboard app: a worker polls; snapshots go up as messages and down as attributes."""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, Header, Label, Sparkline

from qvllm.dashboard.data.sources import DashboardSnapshot
from qvllm.dashboard.widgets.panels import (
    LatencyPanel,
    NodesTable,
    PodsTable,
    QueuePanel,
    ReplicasPanel,
    ThroughputPanel,
)

SNAPSHOT_WIDGETS = (ThroughputPanel, QueuePanel, ReplicasPanel, LatencyPanel, PodsTable, NodesTable)


class SnapshotReady(Message):
    """A new snapshot from the poller (posted by the worker)."""

    def __init__(self, snapshot: DashboardSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class DashboardApp(App[None]):
    """Live view of queue-autoscaled vLLM.

    Args:
        poll: returns a fresh :class:`DashboardSnapshot` (blocking I/O; runs in a thread worker).
        interval_s: seconds between polls.
    """

    TITLE = "qvllm dashboard"
    # One vertical stack, nothing scrolls the screen: the summary row and the replicas panel size to
    # their content (height: auto, no fr rows inside), and only #tables takes the rest (1fr); the
    # tables scroll internally. Below 36 rows the panels trade their box borders for a left bar.
    CSS = """
    #summary { height: auto; }
    #rates { width: 34; height: auto; }
    #queue-box { width: 1fr; height: auto; }
    ThroughputPanel, LatencyPanel, QueuePanel, ReplicasPanel { height: auto; padding: 0 1; }
    #rates > *, #queue-box, ReplicasPanel { border-left: tall $accent; }
    Screen.-tall #rates > *, Screen.-tall #queue-box, Screen.-tall ReplicasPanel { border: round $accent; }
    .spark-row { height: 1; padding: 0 1; }
    Screen.-tall .spark-row { height: 2; }
    .spark-row Label { width: 9; }
    .spark-row Sparkline { width: 1fr; height: 100%; }
    #tables { height: 1fr; }
    #tables DataTable { height: 1fr; min-height: 2; }
    """
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [("q", "quit", "Quit"), ("r", "refresh", "Poll now")]

    def __init__(self, poll: Callable[[], DashboardSnapshot], interval_s: float = 2.0) -> None:
        super().__init__()
        self.poll = poll
        self.interval_s = interval_s
        self.last: DashboardSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="summary"):
            with Vertical(id="rates"):
                yield ThroughputPanel(id="throughput")
                yield LatencyPanel(id="latency")
            with Vertical(id="queue-box"):
                yield QueuePanel(id="queue")
                with Horizontal(classes="spark-row"):
                    yield Label("running")
                    yield Sparkline([], id="running-spark")
                with Horizontal(classes="spark-row"):
                    yield Label("waiting")
                    yield Sparkline([], id="waiting-spark")
        yield ReplicasPanel(id="replicas")
        with Vertical(id="tables"):
            yield Label("[b]vLLM pods: time to ready[/b]", id="pods-title")
            yield PodsTable(id="pods")
            yield Label("[b]GPU nodes[/b]")
            yield NodesTable(id="nodes")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(self.interval_s, self.action_refresh)

    def action_refresh(self) -> None:
        """Poll in a thread worker (exclusive: a slow scrape is not stacked)."""
        self._poll_worker()

    @work(thread=True, exclusive=True, group="poll")
    def _poll_worker(self) -> None:
        self.post_message(SnapshotReady(self.poll()))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.last = message.snapshot
        if message.snapshot.kube is None and message.snapshot.engines:
            self.query_one("#pods-title", Label).update("[b]vLLM engines (local): requests in flight, time to ready[/b]")
        for widget_type in SNAPSHOT_WIDGETS:
            for widget in self.query(widget_type):
                widget.snapshot = message.snapshot
