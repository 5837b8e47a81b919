"""Gateway settings, read from ``GATEWAY_*`` environment variables.

Importable without FastAPI (only pydantic and the standard library), so the cdk8s gateway
chart and the local stack can build the container env with :func:`settings_env` instead of
magic strings::

    from services.gateway.settings import settings_env
    env = settings_env(upstream_url="http://vllm.inference:8000", served_model_name="m")
    # {"GATEWAY_UPSTREAM_URL": "http://vllm.inference:8000", "GATEWAY_SERVED_MODEL_NAME": "m"}

These settings own the defaults: ``app_config.model.GatewayConfig`` takes its defaults from
:func:`default` instead of repeating them. The port, paths and the endpoint-source variable
names come from :mod:`services.gateway.contract`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "GATEWAY_"

# Seconds the server lets open connections (token streams) run after SIGTERM before it cancels them
# and runs the app's shutdown (uvicorn's timeout_graceful_shutdown). The pod's termination grace
# (k8s_charts/gateway.py) and `qvllm local down` wait longer than this, so the drain is not cut by SIGKILL.
GRACEFUL_SHUTDOWN_SECONDS = 30
# Answers still open this long before that window closes are ended by the gateway itself, each with
# one "shutting_down" error (an SSE event, or a 503 when nothing was sent yet), so the server finds
# nothing to cancel: a request uvicorn cancels at the window's end is cut without it (the client's
# stream breaks mid-chunk and uvicorn logs a traceback; uvicorn 0.54 Server.shutdown cancels the
# tasks and goes on to the app's shutdown at once, closing the connections under the goodbye).
STREAM_END_MARGIN_SECONDS = 3

# Environment variable names (one constant per setting; ENV_VARS maps field -> name).
ENV_UPSTREAM_URL = "GATEWAY_UPSTREAM_URL"
ENV_SERVED_MODEL_NAME = "GATEWAY_SERVED_MODEL_NAME"
ENV_MAX_IN_FLIGHT = "GATEWAY_MAX_IN_FLIGHT"
ENV_MAX_QUEUE = "GATEWAY_MAX_QUEUE"
ENV_QUEUE_TIMEOUT_SECONDS = "GATEWAY_QUEUE_TIMEOUT_SECONDS"
ENV_HEARTBEAT_INTERVAL_SECONDS = "GATEWAY_HEARTBEAT_INTERVAL_SECONDS"
ENV_CONNECT_TIMEOUT_SECONDS = "GATEWAY_CONNECT_TIMEOUT_SECONDS"
ENV_CONNECT_RETRIES = "GATEWAY_CONNECT_RETRIES"
ENV_READ_TIMEOUT_SECONDS = "GATEWAY_READ_TIMEOUT_SECONDS"
ENV_MAX_BODY_BYTES = "GATEWAY_MAX_BODY_BYTES"
ENV_API_KEYS = "GATEWAY_API_KEYS"
ENV_API_KEYS_FILE = "GATEWAY_API_KEYS_FILE"
ENV_LOG_LEVEL = "GATEWAY_LOG_LEVEL"
ENV_PORT = "GATEWAY_PORT"
ENV_RETRY_AFTER_SECONDS = "GATEWAY_RETRY_AFTER_SECONDS"
ENV_MAX_CONNECTIONS = "GATEWAY_MAX_CONNECTIONS"
ENV_UPSTREAM_SERVICE = "GATEWAY_UPSTREAM_SERVICE"
ENV_UPSTREAM_NAMESPACE = "GATEWAY_UPSTREAM_NAMESPACE"
ENV_UPSTREAM_PORT_NAME = "GATEWAY_UPSTREAM_PORT_NAME"
ENV_DISCOVERY_RESYNC_SECONDS = "GATEWAY_DISCOVERY_RESYNC_SECONDS"
ENV_MAX_HELD_REQUESTS = "GATEWAY_MAX_HELD_REQUESTS"
ENV_HOLD_TIMEOUT_SECONDS = "GATEWAY_HOLD_TIMEOUT_SECONDS"
ENV_PREFIX_AFFINITY = "GATEWAY_PREFIX_AFFINITY"
ENV_PREFIX_AFFINITY_CHARS = "GATEWAY_PREFIX_AFFINITY_CHARS"
ENV_PREFIX_AFFINITY_LOAD_FACTOR = "GATEWAY_PREFIX_AFFINITY_LOAD_FACTOR"
ENV_EDGE_READ_TIMEOUT_SECONDS = "GATEWAY_EDGE_READ_TIMEOUT_SECONDS"

# Port, paths and endpoint-source variables: the gateway's contract module owns them.
from services.gateway.contract import ENV_UPSTREAM_ENDPOINTS, ENV_UPSTREAM_ENDPOINTS_FILE  # noqa: E402,F401
from services.gateway.contract import HEALTH_PATH, METRICS_PATH, READY_PATH  # noqa: E402,F401
from services.gateway.contract import PORT as DEFAULT_PORT  # noqa: E402

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class GatewaySettings(BaseModel):
    """All gateway settings. Times in seconds, sizes in bytes.

    Attributes:
        upstream_url: vLLM base URL without ``/v1`` (e.g. ``http://vllm.inference:8000``): the
            only upstream when no endpoint source is set, and the fallback when EndpointSlice
            discovery fails.
        upstream_endpoints: static endpoint list (base URLs), ``GATEWAY_UPSTREAM_ENDPOINTS``
            as a comma list; each is used as a ready endpoint.
        upstream_endpoints_file: a JSON file holding a list of base URLs, re-read when it
            changes (polled every 0.25 s); the local stack writes it as engines become ready.
        upstream_service: name of the vLLM Service whose EndpointSlices are watched through
            the Kubernetes API (in the cluster); empty = no watch.
        upstream_namespace: namespace of that Service (and of its EndpointSlices).
        upstream_port_name: the Service port (by name) that the EndpointSlices list.
        discovery_resync_seconds: the watch is restarted with a full list this often, so a
            missed event cannot persist longer than this.
        max_held_requests: requests held while no endpoint is ready (scale from zero);
            beyond that: 503 with ``Retry-After``.
        hold_timeout_seconds: longest hold before 503 with ``Retry-After``.
        prefix_affinity: route requests sharing their first ``prefix_affinity_chars``
            characters of prompt to the same endpoint (consistent hashing with bounded load),
            so vLLM's prefix cache hits; off = least outstanding requests, two random choices.
        prefix_affinity_chars: length of the prompt prefix that forms the affinity key.
        prefix_affinity_load_factor: an endpoint keeps affine requests while its in-flight
            count stays within this factor of the average (the "c" of Mirrokni, Thorup and
            Zadimoghaddam, "Consistent Hashing with Bounded Loads", arXiv:1608.01350).
        edge_read_timeout_seconds: the edge's origin read timeout (CloudFront); a
            non-streaming request still unanswered shortly before it is answered 504 with a
            message that names the limit and suggests ``"stream": true``. None: no edge limit.
        served_model_name: the model name clients must send; empty = learn it from the
            upstream's ``/v1/models`` (then any model the upstream lists is accepted).
        max_in_flight: requests proxied at once per gateway process.
        max_queue: requests allowed to wait for an in-flight slot; beyond that: 429.
        queue_timeout_seconds: longest wait for a slot before 429.
        retry_after_seconds: value of the ``Retry-After`` header on 429.
        heartbeat_interval_seconds: SSE comment interval while a stream waits for its first
            token; must stay below the ALB idle and CloudFront origin read timeouts, or they cut a
            request that waits in a queue.
        connect_timeout_seconds: upstream TCP connect timeout (and pool-acquire timeout).
        connect_retries: after a failed or timed-out connect (nothing was sent yet, so another
            attempt is safe) every other ready endpoint is tried once at once; then this many
            more rounds follow, 0.25 s, 0.5 s, ... apart. Covers a restarting vLLM pod and a
            loaded node that is slow to accept.
        read_timeout_seconds: upstream read timeout between two received chunks.
        max_body_bytes: request body limit (413 above).
        max_connections: connections towards all vLLM endpoints together (each endpoint has its
            own keep-alive pool within this limit).
        api_keys: accepted Bearer keys; empty (and no file) = auth disabled.
        api_keys_file: file with one key per line (a mounted secret), merged with api_keys.
        log_level: root log level of the JSON logs.
        port: listening port of ``python -m services.gateway``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    upstream_url: str = "http://127.0.0.1:8001"
    served_model_name: str = ""
    max_in_flight: Annotated[int, Field(gt=0)] = 64
    max_queue: Annotated[int, Field(ge=0)] = 256
    queue_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    retry_after_seconds: Annotated[int, Field(ge=0)] = 1
    heartbeat_interval_seconds: Annotated[float, Field(gt=0)] = 15.0
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 3.0
    connect_retries: Annotated[int, Field(ge=0, le=10)] = 2
    read_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    max_connections: Annotated[int, Field(gt=0)] = 256
    upstream_endpoints: tuple[str, ...] = ()
    upstream_endpoints_file: Path | None = None
    upstream_service: str = ""
    upstream_namespace: str = "default"
    upstream_port_name: str = "http"
    discovery_resync_seconds: Annotated[float, Field(gt=0)] = 300.0
    max_held_requests: Annotated[int, Field(ge=0)] = 256
    hold_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    prefix_affinity: bool = False
    prefix_affinity_chars: Annotated[int, Field(gt=0)] = 512
    prefix_affinity_load_factor: Annotated[float, Field(ge=1.0)] = 1.25
    edge_read_timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    api_keys: tuple[str, ...] = ()
    api_keys_file: Path | None = None
    log_level: LogLevel = "INFO"
    port: Annotated[int, Field(gt=0, lt=65536)] = DEFAULT_PORT

    @field_validator("upstream_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_keys", "upstream_endpoints", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("upstream_endpoints")
    @classmethod
    def _endpoint_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cls._url(url) for url in value)

    @model_validator(mode="after")
    def _one_endpoint_source(self) -> "GatewaySettings":
        sources = [n for n, on in (("upstream_endpoints", self.upstream_endpoints),
                                   ("upstream_endpoints_file", self.upstream_endpoints_file),
                                   ("upstream_service", self.upstream_service)) if on]
        if len(sources) > 1:
            names = ", ".join(ENV_PREFIX + n.upper() for n in sources)
            raise ValueError(f"set at most one endpoint source, got {names}")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def all_api_keys(self) -> frozenset[str]:
        """Keys from ``api_keys`` plus non-empty, non-comment lines of ``api_keys_file``.

        Raises:
            OSError: the file is set but cannot be read.
        """
        keys = set(self.api_keys)
        if self.api_keys_file is not None:
            for line in self.api_keys_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    keys.add(line)
        return frozenset(keys)


ENV_VARS: dict[str, str] = {name: ENV_PREFIX + name.upper() for name in GatewaySettings.model_fields}


def default(field: str) -> Any:
    """The default of setting ``field`` (``app_config`` takes the gateway's defaults from here).

    Raises:
        KeyError: no such setting.
    """
    return GatewaySettings.model_fields[field].get_default(call_default_factory=True)


class SettingsError(ValueError):
    """Invalid GATEWAY_* environment; the message names each bad variable."""


# Kubernetes injects <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_<n>_TCP... for every Service of the
# namespace (https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables);
# our Service is called "gateway", so those names are expected and are not settings.
_SERVICE_LINK = re.compile(rf"^{ENV_PREFIX}(SERVICE_[A-Z_]+|PORT_\d+_[A-Z_]+)$")


def _refuse_misspelt(environ: Mapping[str, str]) -> None:
    """Refuse a GATEWAY_* variable that is no setting (a typo would otherwise be ignored silently).

    Raises:
        SettingsError: names the variable and the closest setting.
    """
    known = set(ENV_VARS.values())
    unknown = sorted(
        name for name in environ
        if name.startswith(ENV_PREFIX) and name not in known and not _SERVICE_LINK.match(name)
    )
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise SettingsError(f"unknown gateway variable(s): {', '.join(hints)}")


def load_settings(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """Build settings from ``environ`` (default ``os.environ``); unset variables keep defaults.

    Raises:
        SettingsError: a variable does not parse; names the variable and the reason.
    """
    source = os.environ if environ is None else environ
    _refuse_misspelt(source)
    values = {field: source[var] for field, var in ENV_VARS.items() if var in source}
    try:
        settings = GatewaySettings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_VARS.get(str(err['loc'][0]), err['loc'][0]) if err['loc'] else 'GATEWAY_*'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid gateway environment: {problems}") from exc
    # Checked here, in the process that reads the file, not in the model: the chart builds the
    # same settings at synth, where the mounted secret does not exist. A missing file would
    # otherwise surface as a traceback inside the server's start.
    if settings.api_keys_file is not None and not settings.api_keys_file.is_file():
        raise SettingsError(f"invalid gateway environment: {ENV_API_KEYS_FILE}: "
                            f"{str(settings.api_keys_file)!r} is not a readable file")
    return settings


def settings_env(**values: Any) -> dict[str, str]:
    """Return ``{GATEWAY_*: str}`` for the given settings fields (validated).

    Lists/tuples (``api_keys``) become comma lists, booleans ``true``/``false``, numbers
    ``str()``. Only the given fields are returned (the rest keep their defaults).

    Raises:
        SettingsError: unknown field name or a value that fails validation.
    """
    unknown = sorted(set(values) - set(ENV_VARS))
    if unknown:
        raise SettingsError(f"unknown gateway setting(s): {', '.join(unknown)}")
    try:
        GatewaySettings(**values)
    except ValidationError as exc:
        raise SettingsError(f"invalid gateway setting: {exc}") from exc
    out: dict[str, str] = {}
    for field, value in values.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out[ENV_VARS[field]] = text
    return out
