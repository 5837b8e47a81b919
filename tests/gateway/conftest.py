"""Fixtures: one real vLLM per test package, the fake upstream, gateways on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.vllm_server import VllmServer, running_vllm

from .servers import FakeUpstream, ThreadedServer


# Long enough (several seconds of generation on 2 CPU cores) that an abort which works always
# lands before the end, even when the machine is busy (B13, the 429 test).
LONG_ANSWER_TOKENS = 7800


@pytest.fixture(scope="package")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """One real CPU vLLM (tiny model) shared by the package's engine tests."""
    with running_vllm(tmp_path_factory.mktemp("gateway-vllm"), max_model_len=LONG_ANSWER_TOKENS + 192) as server:
        yield server


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[tuple[FakeUpstream, str]]:
    """(FakeUpstream, base URL) on loopback."""
    fake = FakeUpstream()
    with ThreadedServer(fake) as server:
        yield fake, server.url


class RunningGateway:
    """A gateway served by uvicorn on loopback."""

    def __init__(self, app: Any, url: str) -> None:
        self.app = app
        self.url = url


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., RunningGateway]]:
    """Factory: ``start_gateway(upstream_url=..., **settings)`` -> RunningGateway."""
    with ExitStack() as stack:

        def start(**values: Any) -> RunningGateway:
            app = create_app(GatewaySettings(**values))
            server = stack.enter_context(ThreadedServer(app))
            return RunningGateway(app, server.url)

        yield start


@pytest.fixture(autouse=True)
def _gateway_logs_reach_caplog(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The gateway's JSON logger does not propagate to the root logger (its own stderr handler
    writes each record once), so pytest's capture handler, which sits on the root, sees its
    records only while it is attached to that logger too."""
    from services.gateway.logs import LOGGER_NAME
    import logging

    logger = logging.getLogger(LOGGER_NAME)
    # configure_logging (run when a test starts a gateway) turns propagation off at any time; with
    # it off from the start and the handler attached here, each record reaches caplog once.
    propagate = logger.propagate
    logger.propagate = False
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
