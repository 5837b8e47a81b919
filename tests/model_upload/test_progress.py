"""``qvllm upload-model``'s bars: the files bar counts files; the bytes bar shows size, speed and
time left (rendered by rich, as the terminal shows them)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.progress import Progress

from qvllm.commands.upload_model import _progress_adapter, progress_columns
from services.model_upload.copy import copy_model
from services.model_upload.sources import HubSource
from tests.support.fake_hub import FakeHub, SyntheticFile


def _rows(progress: Progress) -> dict[str, str]:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(progress.make_tasks_table(progress.tasks))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return {line.split()[0]: line for line in text.splitlines() if line.strip()}


def test_files_bar_counts_files_and_bytes_bar_shows_speed_and_time_left(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    big = SyntheticFile(80 * 1024 * 1024, seed=5)
    hub.add_repo("org/tiny", {**tiny_files, "model-big.safetensors": big})
    progress = Progress(*progress_columns(), console=Console(file=io.StringIO()), auto_refresh=False)
    adapter = _progress_adapter(progress)
    manifest = copy_model(HubSource("org/tiny", endpoint=hub.base_url), s3_client=s3, bucket=bucket,
                          prefix="models/bars/", workers=2, progress=adapter)
    files, size = len(manifest.files), manifest.total_bytes
    by_kind = {task.fields["kind"]: task for task in progress.tasks}
    assert (by_kind["files"].total, by_kind["files"].completed) == (files, files)
    assert (by_kind["bytes"].total, by_kind["bytes"].completed) == (size, size)
    rows = _rows(progress)
    assert f"{files}/{files}" in rows["files"]
    assert "MB" not in rows["files"] and "/s" not in rows["files"] and "bytes" not in rows["files"].split(maxsplit=1)[1]
    assert f"{size / 1e6:.1f}/{size / 1e6:.1f} MB" in rows["bytes"]
    assert "MB/s" in rows["bytes"] or "kB/s" in rows["bytes"]  # speed
    assert "0:00:00" in rows["bytes"]  # time left
