"""Retries: exponential backoff with jitter between stream resumes and retried requests,
``Retry-After`` as a minimum, bounded total time, and a final error saying how many attempts
over how long. The policy alone (fake clock), then against the fake hub and a real moto_server."""

from __future__ import annotations

from typing import Any

import pytest

from services.model_upload.copy import copy_model, read_manifest
from services.model_upload.errors import SourceNetworkError
from services.model_upload.retry import Backoff, parse_retry_after
from services.model_upload.sources import HubSource
from tests.support.fake_hub import FakeHub, SyntheticFile


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_waits_grow_exponentially_with_jitter_and_stop_at_the_budget() -> None:
    clock = _Clock()
    attempts = Backoff(base_s=0.5, cap_s=8, max_attempts=100, budget_s=30).start(clock, clock.sleep)
    while attempts.wait():
        pass
    waits = clock.slept
    for n, wait in enumerate(waits):  # the n-th wait lies in [b/2, b], b = min(cap, base * 2**n)
        bound = min(8, 0.5 * 2 ** n)
        assert bound / 2 <= wait <= bound
    assert waits[:5] == sorted(waits[:5]) and waits[-1] > 4 * waits[0]  # grows until the cap
    assert sum(waits) <= 30 < sum(waits) + 8  # bounded: the next wait would have ended past 30 s
    assert attempts.summary() == f"{len(waits) + 1} attempts over {sum(waits):.1f} s"


def test_retry_after_is_a_minimum_and_max_attempts_counts_every_request() -> None:
    clock = _Clock()
    attempts = Backoff(base_s=0.1, cap_s=10, max_attempts=4, budget_s=100).start(clock, clock.sleep)
    assert attempts.wait(retry_after=3) and attempts.wait(retry_after=3) and attempts.wait(retry_after=0)
    assert not attempts.wait(retry_after=3)  # the 4th failure is the last attempt
    assert clock.slept[:2] == [3, 3] and 0.2 <= clock.slept[2] <= 0.4
    assert parse_retry_after("2") == 2.0 and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_a_dropped_stream_and_a_short_outage_are_bridged(
    hub: FakeHub, s3: Any, bucket: str, multipart_file: SyntheticFile
) -> None:
    """The stream breaks, and for 2 s every resumed stream breaks at once: the copy waits it out
    (it used to spend its five resumes within 0.4 s and fail)."""
    hub.add_repo("org/big", {"model.safetensors": multipart_file})
    hub.drop("model.safetensors", after_bytes=10 * 1024 * 1024, outage_s=2.0, empty_body=True)
    source = HubSource("org/big", endpoint=hub.base_url, backoff=Backoff(base_s=0.25, cap_s=2, budget_s=30))
    manifest = copy_model(source, s3_client=s3, bucket=bucket, prefix="models/outage/", workers=1)
    assert manifest.files[0].sha256 == multipart_file.sha256()
    assert hub.bytes_served["model.safetensors"] == multipart_file.size  # resumed where it broke, no byte twice
    assert hub.downloads["model.safetensors"] > 4  # the stream did break again during the outage


def test_refused_connections_for_2_s_are_bridged(hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]) -> None:
    hub.add_repo("org/tiny", tiny_files)
    hub.outage(2.0)
    source = HubSource("org/tiny", endpoint=hub.base_url, backoff=Backoff(base_s=0.25, cap_s=2, budget_s=30))
    manifest = copy_model(source, s3_client=s3, bucket=bucket, prefix="models/refused/", workers=1)
    assert len(manifest.files) == len(tiny_files)


def test_persistent_429_with_retry_after_waits_grow_and_the_error_says_how_long(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    hub.fail("config.json", 429, times=1000, retry_after=1)
    # waits: max(1, [0.25, 0.5]) = 1, max(1, [0.5, 1]) = 1, [1, 2], [2, 4]: all four fit in 12 s
    source = HubSource("org/tiny", endpoint=hub.base_url, backoff=Backoff(base_s=0.5, cap_s=30, budget_s=12))
    with pytest.raises(SourceNetworkError) as err:
        copy_model(source, s3_client=s3, bucket=bucket, prefix="models/busy/", workers=1)
    assert "HTTP 429 from the Hugging Face hub for file 'config.json'" in str(err.value)
    assert "gave up after" in str(err.value) and "attempts over" in str(err.value)
    times = hub.body_times["config.json"]
    waits = [b - a for a, b in zip(times, times[1:])]
    assert all(w >= 0.95 for w in waits), waits  # Retry-After: 1 is a minimum
    assert len(waits) >= 4 and waits[-1] > 1.5 * waits[0], waits  # and the backoff grows past it
    assert times[-1] - times[0] <= 12 + 2  # bounded: the budget, plus slack for slow requests on a loaded machine
    assert read_manifest(s3, bucket, "models/busy/") is None


def test_parts_ask_the_resolver_once_and_the_token_never_reaches_the_cdn(
    s3: Any, bucket: str, big_file: SyntheticFile
) -> None:
    """Parallel ranged parts go to the CDN location the resolve URL redirects to (asked once per
    file, as huggingface_hub does; the hub rate-limits its resolver), on another origin, without
    the Authorization header."""
    with FakeHub(second_origin=True) as hub:
        hub.add_repo("meta/gated", {"model.safetensors": big_file, "config.json": b"{}"}, gated=True)
        hub.accept_terms("meta/gated", "hf_SECRETcdn")
        source = HubSource("meta/gated", endpoint=hub.base_url, token="hf_SECRETcdn")
        manifest = copy_model(source, s3_client=s3, bucket=bucket, prefix="models/cdn/", part_size=16 * 1024 * 1024)
        assert manifest.files[-1].sha256 == big_file.sha256()
        resolves = [(m, p) for m, p, _ in hub.log if p.endswith("/resolve/" + manifest.commit + "/model.safetensors")]
        cdn = [(m, auth) for m, p, auth in hub.log if p.startswith("/cdn/")]
        assert len(cdn) >= big_file.size // (16 * 1024 * 1024)  # one ranged GET per part
        assert resolves == [("HEAD", resolves[0][1])] * len(resolves) and len(resolves) <= 2  # access check + location
        assert not any(auth for _, auth in cdn)


def test_a_hub_host_that_does_not_resolve_fails_at_once_naming_it() -> None:
    """A name that does not resolve (``.invalid`` never does, RFC 2606) is not retried: the
    error names the host at once instead of after the whole backoff (about 100 s)."""
    slept: list[float] = []

    class Recording(Backoff):
        def start(self, clock=None, sleep=None):  # type: ignore[no-untyped-def,override]
            return super().start(sleep=slept.append)

    source = HubSource("org/model", endpoint="http://hub.example.invalid", backoff=Recording())
    with pytest.raises(SourceNetworkError, match="could not resolve the Hugging Face hub's host 'hub.example.invalid'"):
        source.resolve()
    assert slept == []
