"""The endpoints file source (local stack): re-read on change; a broken file keeps the last list."""

from __future__ import annotations

import asyncio
import json
import os

from services.gateway.endpoints import FileEndpoints
from services.gateway.metrics import GatewayMetrics
from services.gateway.routing import Router


def _write(path, text: str) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_file_changes_apply_and_a_broken_file_keeps_the_last_good_list(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("WARNING", logger="gateway")
    path = tmp_path / "endpoints.json"
    router = Router(GatewayMetrics(), max_held=1, hold_timeout=1)
    task = asyncio.create_task(FileEndpoints(path, poll_seconds=0.01).run(router))

    async def until(condition) -> None:  # type: ignore[no-untyped-def]
        for _ in range(300):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached")

    try:
        await until(lambda: router.synced)  # a missing file: synced, nothing ready (requests are held)
        assert router.ready == []
        _write(path, json.dumps(["http://127.0.0.1:8001/", "http://127.0.0.1:8002"]))
        await until(lambda: len(router.ready) == 2)
        assert [s.name for s in router.ready] == ["127.0.0.1:8001", "127.0.0.1:8002"]
        _write(path, '["http://127.0.0.1:8001", 8002]')
        await until(lambda: any("item 1 (8002)" in r.__dict__.get("error", "") for r in caplog.records))
        assert len(router.ready) == 2  # the last good list stays
        _write(path, "{not json")
        await until(lambda: any("not JSON" in r.__dict__.get("error", "") for r in caplog.records))
        _write(path, json.dumps(["http://127.0.0.1:8002"]))
        await until(lambda: [s.name for s in router.ready] == ["127.0.0.1:8002"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
