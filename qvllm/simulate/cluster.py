"""The replay: requests through the gateway, vLLM replicas, the scaling loop, pods and GPU nodes, in time.

A discrete-event simulation of what the product deploys, event by event (seconds):

- **Gateway** (the ``gateway`` config): with no Ready vLLM
  pod a request is held (up to ``max_held_requests``, at most ``hold_timeout_seconds``, else 503:
  the scale-from-zero path); then admission control (``replicas x max_in_flight`` proxied,
  ``replicas x max_queue`` waiting at most ``queue_timeout_seconds``, else 429); then the Ready pod
  with the fewest outstanding requests. The gateway pods are pooled into one.
- **vLLM replica**: the :class:`~qvllm.simulate.engine.ServiceCurve`, at most ``max_num_seqs``
  running (processor sharing of the decode steps), the rest waiting in its queue.
- **Metrics -> scaling**: every ``OTEL_SCRAPE_INTERVAL_SECONDS`` the collector's scrape takes
  each Ready pod's running and waiting counts and the gateway's held count; each trigger's value
  is the OTel add-on's answer to its scoped query over those series
  (:meth:`app_config.metric_query.MetricQuery.answer`); KEDA's polls and the HPA's syncs are
  :class:`qvllm.scaling.ControlLoop` (the code of ``scale-math``), which sets the Deployment's
  replicas.
- **Pods and nodes**: a new pod takes a free GPU node, else preempts a warm-headroom placeholder,
  else Karpenter launches a node for it (one pod per node); its start follows the cold-start
  model (:mod:`app_config.cold_start`): node launch, image pull unless the node holds the image,
  the engine phases (compile-cache hit once a pod filled a shared cache), readiness. A scale-down
  removes not-yet-Ready pods first, then the newest; a Ready pod leaves the gateway's endpoints
  at once, finishes its requests within ``terminationGracePeriodSeconds`` (the rest fail), and
  its node is consolidated ``consolidate_after`` after it is empty, unless a pod takes it first.
  Placeholders keep ``scaling.warm_gpu_nodes`` spare nodes (when the config has that setting);
  they are assumed to hold the vLLM image.
- **Billing**: a node costs from its launch to its termination (EC2 bills per second); spot or
  on-demand by ``simulation.spot_share``, interleaved evenly. Spot interruptions are not modeled.

Not modeled: the add-on's 120 s retention of a vanished pod's series, spot interruptions, gateway
pods individually, CPU nodes and the rest of the bill.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app_config.cold_start import ColdStartBudget, cold_start_budget, deployment_switches
from app_config.constants import (
    GATEWAY_NAME,
    INFERENCE_NAMESPACE,
    METRIC_RUNNING,
    METRIC_WAITING,
    OTEL_SCRAPE_INTERVAL_SECONDS,
    SERIES_DEPLOYMENT_LABEL,
    SERIES_NAMESPACE_LABEL,
    SERIES_POD_LABEL,
    VLLM_NAME,
    GATEWAY_HELD_REQUESTS_METRIC,
)
from qvllm.scaling import ControlLoop, ScalingSpec
from qvllm.simulate.engine import ServiceCurve
from qvllm.simulate.workload import Trace, Users, Workload

SIMULATED_METRICS = (METRIC_RUNNING, METRIC_WAITING, GATEWAY_HELD_REQUESTS_METRIC)
DRAIN_LIMIT_S = 3600.0  # after the load: stop once scaled in, or this much later

# Event priorities at one instant: requests first, then the scrape sees them, then the controllers.
_REQUEST, _POD, _SCRAPE, _CONTROL = 0, 1, 2, 3


class SimulationError(ValueError):
    """The configuration cannot be simulated (e.g. a trigger on a metric the replay does not produce)."""


@dataclass
class Request:
    """One request and what happened to it (times in seconds; None = did not happen)."""

    id: int
    arrival: float
    prompt_tokens: int
    output_tokens: int
    user: int | None = None
    admitted: float | None = None  # into vLLM's running batch
    first_token: float | None = None
    done: float | None = None
    outcome: str | None = None  # ok, 429, 503, failed
    replica: "Pod | None" = None
    finish_v: float = 0.0
    ttft_factor: float = 1.0  # this request's TTFT relative to the curve's (ServiceCurve.ttft_cv)

    @property
    def ttft_s(self) -> float | None:
        """Arrival to first token, as the user sees it."""
        return None if self.first_token is None else self.first_token - self.arrival

    @property
    def wait_s(self) -> float | None:
        """Arrival to vLLM admission: gateway hold and queue, plus vLLM's own queue."""
        return None if self.admitted is None else self.admitted - self.arrival


@dataclass
class Node:
    """A GPU node Karpenter launched."""

    id: int
    capacity: str
    launched: float
    ready_at: float | None = None
    gone_at: float | None = None
    pod: "Pod | None" = None
    placeholder: bool = False
    image_cached: bool = False
    version: int = 0
    empty_since: float | None = None


@dataclass
class Pod:
    """A vLLM pod: pending, starting (bound to a node), ready, terminating, gone."""

    id: int
    created: float
    state: str = "pending"
    node: Node | None = None
    ready_at: float | None = None
    warm: bool = False
    running: list[Request] = field(default_factory=list)
    waiting: deque[Request] = field(default_factory=deque)
    decoding: list[tuple[float, int, Request]] = field(default_factory=list)
    v: float = 0.0
    v_time: float = 0.0
    version: int = 0
    entering: int = 0  # routed here, not yet in vLLM's scheduler (HTTP, tokenization)

    @property
    def outstanding(self) -> int:
        """Requests routed to the pod and not finished."""
        return len(self.running) + len(self.waiting) + self.entering


@dataclass(frozen=True)
class Sample:
    """The cluster at one scrape: replicas asked, pods, nodes by capacity type, requests by place."""

    t: float
    desired: int
    ready: int
    starting: int
    nodes: dict[str, int]
    running: int
    waiting: int
    held: int
    queued: int


@dataclass
class Result:
    """What a replay produced: every request, the samples, the scale events, nodes and pod starts."""

    requests: list[Request]
    samples: list[Sample]
    events: list[Any]
    nodes: list[Node]
    pod_starts: list[tuple[float, bool, ColdStartBudget]]
    end: float
    notes: list[str]


def parse_duration(text: str) -> float:
    """Karpenter's duration (``30s``, ``1m30s``, ``1h``) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text)))


def _trigger_metrics(spec: ScalingSpec) -> dict[str, Any]:
    """``{trigger name: parsed query}`` for the formula's triggers.

    Raises:
        SimulationError: a trigger on a metric the replay does not produce.
    """
    out = {}
    for trigger in spec.triggers:
        if trigger.is_resource:
            continue
        query = trigger.metric_query
        if query is None or query.name not in SIMULATED_METRICS:
            raise SimulationError(
                f"scaling trigger {trigger.name!r} reads {query.name if query else repr(trigger.query)}; the simulator "
                f"produces only {', '.join(SIMULATED_METRICS)}"
            )
        out[trigger.name] = query
    return out


class Cluster:
    """One replay (see the module docstring). Build it, then :meth:`run`."""

    def __init__(self, config: Any, spec: ScalingSpec, curve: ServiceCurve, workload: Workload, *,
                 keda_first_poll: float = 0.0, hpa_first_sync: float = 0.0, scrape_first: float = 0.0,
                 initial_replicas: int | None = None, initial_ready: bool = True, until: float | None = None,
                 seed: int = 0) -> None:
        self.config, self.spec, self.curve, self.workload = config, spec, curve, workload
        self.queries = _trigger_metrics(spec)
        self.sync = float(config.cluster.hpa_sync_period_seconds)
        gw = config.gateway
        self.gw_slots = gw.replicas * gw.max_in_flight
        self.gw_queue_cap = gw.replicas * gw.max_queue
        self.gw_queue_timeout = gw.queue_timeout_seconds
        self.max_held = gw.max_held_requests
        self.hold_timeout = gw.hold_timeout_seconds
        # A scaled-in pod gets its preStop sleep, then vLLM drains for --shutdown-timeout and aborts
        # what still runs (VllmConfig.shutdown_timeout_seconds); the rest of the grace is its teardown.
        self.drain_end_s = float(config.vllm.pre_stop_delay_seconds + config.vllm.shutdown_timeout_seconds)
        self.consolidate_after = parse_duration(config.karpenter.gpu.consolidate_after)
        switches = deployment_switches(config)
        self.soci, self.warm_nodes, self.compile_cache = (switches["soci"], switches["warm_gpu_nodes"],
                                                          switches["compile_cache"])
        sim = config.simulation
        self.params = sim.cold_start.parameters()
        self.instance_type = sim.instance_type
        share = sim.spot_share
        self.spot_share = share if share is not None else (1.0 if "spot" in config.karpenter.gpu.capacity_types else 0.0)
        self.node_launch_s = self.params.node_launch_for(self.instance_type)[0]
        start = spec.min_replicas if initial_replicas is None else initial_replicas
        self.loop = ControlLoop(spec, start, self.sync, keda_first_poll=keda_first_poll, hpa_first_sync=hpa_first_sync)
        self.scrape_first, self.initial_ready, self.until = scrape_first, initial_ready, until
        self.rng = random.Random(seed)
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.requests: list[Request] = []
        self.pods: list[Pod] = []
        self.nodes: list[Node] = []
        self.placeholders_pending = 0
        self.held: deque[Request] = deque()
        self.gw_queue: deque[Request] = deque()
        self.in_flight = 0
        self.values: dict[str, float] = {}
        self.samples: list[Sample] = []
        self.pod_starts: list[tuple[float, bool, ColdStartBudget]] = []
        self.compile_filled = False
        self.notes: list[str] = []
        self._ids = itertools.count()
        self.load_end = workload.duration_s
        self._active_users: set[int] = set()
        self._target_users = 0

    # -- event queue -------------------------------------------------------------------------
    def at(self, t: float, priority: int, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (t, priority, next(self._seq), fn, args))

    def run(self) -> Result:
        """Replay the workload to the end (load over, requests finished, scaled in); returns the :class:`Result`."""
        self._start()
        while self._heap:
            t, _, _, fn, args = heapq.heappop(self._heap)
            if (self.until is not None and t > self.until) or self._finished(t):
                break
            self.now = t
            fn(*args)
        end = self.now
        for node in self.nodes:
            if node.gone_at is None:
                node.gone_at = end
        return Result(self.requests, self.samples, list(self.loop.events), self.nodes, self.pod_starts, end,
                      self.notes + list(self.loop.notes))

    def _finished(self, t: float) -> bool:
        if t <= self.load_end or any(r.outcome is None for r in self.requests) or self._users_left():
            return False
        if t > self.load_end + DRAIN_LIMIT_S:
            self.notes.append(f"stopped {DRAIN_LIMIT_S:.0f} s after the load without scaling in")
            return True
        live = [p for p in self.pods if p.state != "gone"]
        floor = self.spec.min_replicas if self.spec.idle_replicas is None else self.spec.idle_replicas
        nodes = [n for n in self.nodes if n.gone_at is None]
        return self.loop.replicas <= floor and len(live) <= floor and len(nodes) <= len(live) + self.warm_nodes

    def _users_left(self) -> bool:
        return bool(self._active_users) and self.now <= self.load_end

    def _start(self) -> None:
        for _ in range(self.loop.replicas):
            pod = self._new_pod()
            if self.initial_ready:  # the deployment is up when the replay starts: its pods are warm and Ready
                node = self._launch_node(ready=True)
                node.image_cached = True
                self._bind(pod, node, ready_now=True)
        for _ in range(self.warm_nodes):
            node = self._launch_node(ready=True)
            node.placeholder = node.image_cached = True
        if self.initial_ready and self.loop.replicas and self.compile_cache:
            self.compile_filled = True
        if isinstance(self.workload, Trace):
            for spec in self.workload.requests:
                self.at(spec.arrival_s, _REQUEST, self._arrive_spec, spec)
        else:
            self._schedule_users(self.workload)
        self.at(self.scrape_first, _SCRAPE, self._scrape)
        self.at(self.loop.keda_first_poll or 0.0, _CONTROL, self._control, "poll")
        self.at(self.loop.hpa_first_sync or 0.0, _CONTROL, self._control, "sync")

    # -- users (closed loop) -----------------------------------------------------------------
    def _schedule_users(self, users: Users) -> None:
        t0, current, uid = 0.0, 0, itertools.count()
        for stage in users.stages:
            step = 1.0 / stage.spawn_rate
            t = t0
            while current < stage.users and t < stage.until_s:
                self.at(t, _REQUEST, self._user_start, next(uid))
                current += 1
                t += step
            if current > stage.users:
                self.at(t0, _REQUEST, self._set_target, stage.users)
                current = stage.users
            t0 = stage.until_s
        self.at(users.duration_s, _REQUEST, self._set_target, 0)

    def _set_target(self, users: int) -> None:
        while len(self._active_users) > users:
            self._active_users.remove(max(self._active_users))

    def _user_start(self, uid: int) -> None:
        self._active_users.add(uid)
        self._user_next(uid)

    def _user_next(self, uid: int) -> None:
        if uid not in self._active_users or self.now >= self.load_end:
            self._active_users.discard(uid)
            return
        users = self.workload
        assert isinstance(users, Users)
        self._arrive(Request(next(self._ids), self.now, users.prompt_tokens, users.output_tokens, user=uid))

    def _user_done(self, req: Request) -> None:
        if req.user is None:
            return
        users = self.workload
        assert isinstance(users, Users)
        if req.outcome == "ok":
            self._user_next(req.user)
        else:
            self.at(self.now + users.failure_wait_s, _REQUEST, self._user_next, req.user)

    # -- gateway -----------------------------------------------------------------------------
    def _arrive_spec(self, spec: Any) -> None:
        self._arrive(Request(next(self._ids), self.now, spec.prompt_tokens, spec.output_tokens))

    def _arrive(self, req: Request) -> None:
        cv = self.curve.ttft_cv
        if cv > 0:
            req.ttft_factor = self.rng.gammavariate(1 / cv**2, cv**2)
        self.requests.append(req)
        self._route(req)

    def _ready_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.state == "ready"]

    def _route(self, req: Request) -> None:
        """Hold while no pod is Ready, then admission, then the least-outstanding Ready pod."""
        if not self._ready_pods():
            if len(self.held) >= self.max_held:
                return self._finish(req, "503")
            self.held.append(req)
            self.at(self.now + self.hold_timeout, _REQUEST, self._hold_timeout, req)
            return None
        if self.in_flight < self.gw_slots and not self.gw_queue:  # FIFO: a freed slot goes to the queue's head
            self.in_flight += 1
            return self._dispatch(req)
        if len(self.gw_queue) >= self.gw_queue_cap:
            return self._finish(req, "429")
        self.gw_queue.append(req)
        self.at(self.now + self.gw_queue_timeout, _REQUEST, self._queue_timeout, req)
        return None

    def _hold_timeout(self, req: Request) -> None:
        if req in self.held:
            self.held.remove(req)
            self._finish(req, "503")

    def _queue_timeout(self, req: Request) -> None:
        if req in self.gw_queue:
            self.gw_queue.remove(req)
            self._finish(req, "429")

    def _dispatch(self, req: Request) -> None:
        ready = self._ready_pods()
        if not ready:  # the endpoints went away after admission: hold again, as the gateway does
            self.in_flight -= 1
            return self._route(req)
        pod = min(ready, key=lambda p: (p.outstanding, p.id))
        req.replica = pod
        pod.entering += 1
        self.at(self.now + self.curve.entry_s * req.ttft_factor, _REQUEST, self._enter, pod, req)
        return None

    def _enter(self, pod: Pod, req: Request) -> None:
        """The request reaches vLLM's scheduler: into the batch if a slot is free and nobody waits."""
        pod.entering -= 1
        if pod.state == "gone":  # killed at the end of its drain meanwhile
            self.in_flight -= 1
            return self._finish(req, "failed")
        self._advance(pod)
        if len(pod.running) < self.curve.max_num_seqs and not pod.waiting:
            self._admit(pod, req)
        else:
            pod.waiting.append(req)
        return None

    def _release(self) -> None:
        """Held requests go on once a pod is Ready; queued ones take freed slots."""
        while self.held and self._ready_pods():
            self._route(self.held.popleft())
        while self.gw_queue and self.in_flight < self.gw_slots and self._ready_pods():
            self.in_flight += 1
            self._dispatch(self.gw_queue.popleft())

    def _finish(self, req: Request, outcome: str) -> None:
        req.outcome, req.done = outcome, self.now
        self._user_done(req)

    # -- vLLM replica ------------------------------------------------------------------------
    def _advance(self, pod: Pod) -> None:
        """Bring the pod's token clock to now (each running sequence decoded at the rate of the batch)."""
        if pod.running:
            pod.v += (self.now - pod.v_time) / self.curve.itl(len(pod.running))
        pod.v_time = self.now

    def _admit(self, pod: Pod, req: Request) -> None:
        pod.running.append(req)
        req.admitted = self.now
        in_batch = max(self.curve.ttft(len(pod.running), req.prompt_tokens) - self.curve.entry_s, 0.0) * req.ttft_factor
        self.at(self.now + in_batch, _REQUEST, self._first_token, pod, req)
        self._reschedule(pod)

    def _first_token(self, pod: Pod, req: Request) -> None:
        if req.outcome is not None or req not in pod.running:
            return
        req.first_token = self.now
        self._advance(pod)
        # One token per engine step for every running sequence (continuous batching): decoding takes
        # the same time for every request of one length, whatever its TTFT did.
        req.finish_v = pod.v + max(req.output_tokens - 1, 0)
        heapq.heappush(pod.decoding, (req.finish_v, req.id, req))
        self._reschedule(pod)

    def _reschedule(self, pod: Pod) -> None:
        pod.version += 1
        if pod.decoding:
            finish_v = pod.decoding[0][0]
            dt = max(finish_v - pod.v, 0.0) * self.curve.itl(len(pod.running))
            self.at(self.now + dt, _REQUEST, self._complete, pod, pod.version)

    def _complete(self, pod: Pod, version: int) -> None:
        if version != pod.version:
            return
        self._advance(pod)
        done = []
        while pod.decoding and pod.decoding[0][0] <= pod.v + 1e-9:
            _, _, req = heapq.heappop(pod.decoding)
            pod.running.remove(req)
            self.in_flight -= 1
            done.append(req)
        while pod.waiting and len(pod.running) < self.curve.max_num_seqs:  # vLLM's queue first (FIFO)
            self._admit(pod, pod.waiting.popleft())
        self._reschedule(pod)
        for req in done:  # then the users, who send their next request at once
            self._finish(req, "ok")
        self._release()
        if pod.state == "terminating" and not pod.outstanding:
            self._pod_gone(pod)

    # -- metrics and scaling -----------------------------------------------------------------
    def _series(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        out: dict[str, list[tuple[dict[str, str], float]]] = {m: [] for m in SIMULATED_METRICS}
        for pod in self._ready_pods():
            labels = {SERIES_NAMESPACE_LABEL: INFERENCE_NAMESPACE, SERIES_DEPLOYMENT_LABEL: VLLM_NAME,
                      SERIES_POD_LABEL: f"{VLLM_NAME}-{pod.id}"}
            out[METRIC_RUNNING].append((labels, float(len(pod.running))))
            out[METRIC_WAITING].append((labels, float(len(pod.waiting))))
        out[GATEWAY_HELD_REQUESTS_METRIC].append(
            ({SERIES_NAMESPACE_LABEL: INFERENCE_NAMESPACE, SERIES_DEPLOYMENT_LABEL: GATEWAY_NAME,
              SERIES_POD_LABEL: f"{GATEWAY_NAME}-0"}, float(len(self.held))))
        return out

    def _scrape(self) -> None:
        series = self._series()
        self.values = {name: q.answer(series[q.name])[0] for name, q in self.queries.items()}
        live = [n for n in self.nodes if n.gone_at is None]
        self.samples.append(Sample(
            self.now, self.loop.replicas, len(self._ready_pods()),
            sum(p.state in ("pending", "starting") for p in self.pods),
            {c: sum(n.capacity == c for n in live) for c in ("spot", "on-demand")},
            sum(len(p.running) for p in self.pods), sum(len(p.waiting) for p in self.pods), len(self.held),
            len(self.gw_queue)))
        self.at(self.now + OTEL_SCRAPE_INTERVAL_SECONDS, _SCRAPE, self._scrape)

    def _control(self, which: str) -> None:
        before = self.loop.replicas
        self.loop.step(self.now, self.values)
        if self.loop.replicas != before:
            self._reconcile()
        period = max(self.spec.polling_interval_seconds, 1) if which == "poll" else self.sync
        self.at(self.now + period, _CONTROL, self._control, which)

    # -- pods and nodes ----------------------------------------------------------------------
    def _new_pod(self) -> Pod:
        pod = Pod(len(self.pods), self.now)
        self.pods.append(pod)
        return pod

    def _launch_node(self, ready: bool = False) -> Node:
        index = len(self.nodes)
        spot = math.floor((index + 1) * self.spot_share + 1e-9) > math.floor(index * self.spot_share + 1e-9)
        node = Node(index, "spot" if spot else "on-demand", self.now)
        self.nodes.append(node)
        if ready:
            node.ready_at = self.now
        else:
            self.at(self.now + self.node_launch_s, _POD, self._node_ready, node)
        return node

    def _reconcile(self) -> None:
        live = [p for p in self.pods if p.state in ("pending", "starting", "ready")]
        desired = self.loop.replicas
        for _ in range(desired - len(live)):
            self._new_pod()
        if len(live) > desired:
            order = {"pending": 0, "starting": 1, "ready": 2}
            for pod in sorted(live, key=lambda p: (order[p.state], -p.id))[:len(live) - desired]:
                self._delete(pod)
        self._schedule()

    def _schedule(self) -> None:
        """Bind pending pods to free nodes, then to placeholder nodes (preempting), else launch nodes."""
        pending, free = self._bind_pending()
        self._refill_headroom(free)
        launching = sum(1 for n in self.nodes if n.ready_at is None and n.gone_at is None)
        for _ in range(len(pending) + self.placeholders_pending - launching):
            self._launch_node()
        self._watch_empty_nodes()

    def _bind_pending(self) -> tuple[list[Pod], list[Node]]:
        """Pending pods onto free nodes, then onto placeholders' nodes; returns the pods still pending
        and the free nodes left."""
        pending = [p for p in self.pods if p.state == "pending"]
        free = [n for n in self.nodes if n.ready_at is not None and n.gone_at is None and n.pod is None
                and not n.placeholder]
        for pod in list(pending):
            node = free.pop(0) if free else next(
                (n for n in self.nodes if n.placeholder and n.gone_at is None and n.pod is None), None)
            if node is None:
                break
            if node.placeholder:  # preempted: the placeholder goes pending and Karpenter replaces the headroom
                node.placeholder = False
                self.placeholders_pending += 1
            self._bind(pod, node)
            pending.remove(pod)
        return pending, free

    def _refill_headroom(self, free: list[Node]) -> None:
        """Pending placeholders take free nodes (they hold the vLLM image once there)."""
        for node in free:
            if self.placeholders_pending:
                node.placeholder, node.image_cached = True, True
                node.version += 1
                self.placeholders_pending -= 1

    def _watch_empty_nodes(self) -> None:
        """Start Karpenter's consolidateAfter clock on nodes that just emptied; stop it on nodes in use."""
        for node in self.nodes:
            empty = node.ready_at is not None and node.gone_at is None and node.pod is None and not node.placeholder
            if empty and node.empty_since is None:  # consolidateAfter counts from the moment it emptied
                node.empty_since = self.now
                node.version += 1
                self.at(self.now + self.consolidate_after, _POD, self._consolidate, node, node.version)
            elif not empty:
                node.empty_since = None

    def _node_ready(self, node: Node) -> None:
        node.ready_at = self.now
        self._schedule()

    def _consolidate(self, node: Node, version: int) -> None:
        if version == node.version and node.pod is None and not node.placeholder and node.gone_at is None:
            node.gone_at = self.now

    def _bind(self, pod: Pod, node: Node, ready_now: bool = False) -> None:
        node.pod, pod.node, pod.state = pod, node, "starting"
        node.version += 1
        node.empty_since = None
        if ready_now:
            pod.state, pod.ready_at = "ready", self.now
            return
        warm = node.ready_at is not None and node.ready_at < self.now
        pod.warm = warm
        budget = cold_start_budget(self.params, instance_type=self.instance_type, soci=self.soci, warm_node=True,
                                   image_cached=node.image_cached,
                                   compile_cache_hit=self.compile_cache and self.compile_filled)
        self.pod_starts.append((self.now, warm, budget))
        self.at(self.now + budget.total_s, _POD, self._pod_ready, pod)

    def _pod_ready(self, pod: Pod) -> None:
        if pod.state != "starting":
            return
        pod.state, pod.ready_at = "ready", self.now
        pod.v_time = self.now
        if pod.node is not None:
            pod.node.image_cached = True
        if self.compile_cache:
            self.compile_filled = True
        self._release()

    def _delete(self, pod: Pod) -> None:
        if pod.state == "pending":
            pod.state = "gone"
        elif pod.state == "starting":
            self._pod_gone(pod)
        elif pod.state == "ready":
            pod.state = "terminating"
            if not pod.outstanding:
                self._pod_gone(pod)
            else:
                self.at(self.now + self.drain_end_s, _POD, self._kill, pod)

    def _kill(self, pod: Pod) -> None:
        if pod.state != "terminating":
            return
        for req in list(pod.running) + list(pod.waiting):
            self.in_flight -= 1
            self._finish(req, "failed")
        pod.running.clear()
        pod.waiting.clear()
        pod.decoding.clear()
        self._pod_gone(pod)

    def _pod_gone(self, pod: Pod) -> None:
        pod.state = "gone"
        pod.version += 1
        if pod.node is not None:
            pod.node.pod = None
        self._schedule()
        self._release()


def simulate(config: Any, spec: ScalingSpec, curve: ServiceCurve, workload: Workload, **kwargs: Any) -> Result:
    """Replay ``workload`` through the configured deployment (see :class:`Cluster` for ``kwargs``)."""
    return Cluster(config, spec, curve, workload, **kwargs).run()
