"""``qvllm upload-model``: copy a Hugging Face repo (or a local folder) into S3 from a shell.

The same copy the deploy-time custom resource runs (:mod:`services.model_upload.copy`):
streamed, verified (size + sha256), resumable (re-run after an interruption skips verified
files), completion manifest written last. For models too large for one deploy, or to fill a
bucket on any S3 endpoint (``--endpoint-url``, e.g. the local stack's moto server).

The Hugging Face token is read from the environment variable named by ``--token-env``
(default ``HF_TOKEN``), never from the command line (it would show in shell history and ``ps``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from app_config.constants import MODELS_PREFIX
from app_config.model import DEFAULT_ALLOW_PATTERNS
from services.model_upload.contract import DEFAULT_PART_SIZE, DEFAULT_WORKERS

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
MIB = 1024 * 1024


class _OnlyFor(ProgressColumn):
    """Render ``column`` for the tasks of one kind (``bytes`` or ``files``) and nothing for the other."""

    def __init__(self, kind: str, column: ProgressColumn) -> None:
        super().__init__()
        self.kind, self.column = kind, column

    def render(self, task: Task) -> Text:  # type: ignore[override]
        if task.fields.get("kind") != self.kind:
            return Text("")
        return self.column.render(task)  # type: ignore[return-value]


def progress_columns() -> tuple[ProgressColumn, ...]:
    """The bars' columns: files as ``done/total``; bytes with size, speed and time left."""
    return (
        TextColumn("{task.description:>5}"),
        BarColumn(),
        _OnlyFor("files", MofNCompleteColumn()),
        _OnlyFor("bytes", DownloadColumn()),
        _OnlyFor("bytes", TransferSpeedColumn()),
        _OnlyFor("bytes", TimeRemainingColumn()),
    )


def _progress_adapter(progress: Progress):  # noqa: ANN202 - returns a CopyProgress subclass instance
    from services.model_upload.copy import CopyProgress
    from services.model_upload.sources import FileEntry

    class RichProgress(CopyProgress):
        """Two rich bars: bytes stored in S3 (speed, time left) and files verified (a count)."""

        def __init__(self) -> None:
            self.bytes_task = progress.add_task("bytes", total=None, kind="bytes")
            self.files_task = progress.add_task("files", total=None, kind="files")

        def on_plan(self, entries: Sequence[FileEntry], skipped: Sequence[str], resumed_bytes: dict[str, int]) -> None:
            done = set(skipped)
            already = sum(e.size for e in entries if e.path in done) + sum(resumed_bytes.values())
            # reset: the speed and time left count from now, not from bytes stored by an earlier run
            progress.reset(self.bytes_task, total=sum(e.size for e in entries), completed=already)
            progress.update(self.files_task, total=len(entries), completed=len(done))

        def on_bytes(self, path: str, n: int) -> None:
            progress.advance(self.bytes_task, n)

        def on_file_done(self, path: str) -> None:
            progress.advance(self.files_task, 1)

    return RichProgress()


@click.command("upload-model")
@click.option("--repo-id", help="Hugging Face repo id, e.g. 'TheBloke/Mistral-7B-Instruct-v0.2-AWQ'.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit sha.")
@click.option("--local-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Upload this local model folder instead of a hub repo.")
@click.option("--bucket", required=True, help="Destination bucket.")
@click.option("--name", "model_name", help=f"Model folder: objects go to {MODELS_PREFIX}/<name>/.")
@click.option("--prefix", help="Explicit destination prefix (ends with '/'); overrides --name.")
@click.option("--endpoint-url", help="S3 endpoint (e.g. http://127.0.0.1:5000 for a local S3 server).")
@click.option("--region", default=None, help="AWS region of the bucket (default: the AWS config's).")
@click.option("--hf-endpoint", default=DEFAULT_HF_ENDPOINT, show_default=True, help="Hugging Face hub URL.")
@click.option("--token-env", default="HF_TOKEN", show_default=True,
              help="Environment variable holding the Hugging Face token (gated models).")
@click.option("--allow-pattern", "allow_patterns", multiple=True,
              help="File pattern to copy (repeatable). Default: safetensors, configs, tokenizer files.")
@click.option("--all-files", is_flag=True, help="Copy every file of the source (no pattern filter).")
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(1, 64),
              help="Files in parallel (and twice as many parts in memory).")
@click.option("--part-size-mb", default=DEFAULT_PART_SIZE // MIB, show_default=True, type=click.IntRange(5, 5120),
              help="Multipart part size in MiB.")
def command(repo_id: str | None, revision: str, local_dir: Path | None, bucket: str, model_name: str | None,
            prefix: str | None, endpoint_url: str | None, region: str | None, hf_endpoint: str, token_env: str,
            allow_patterns: tuple[str, ...], all_files: bool, workers: int, part_size_mb: int) -> None:
    """Copy a model into s3://BUCKET/models/NAME/, verified, with a progress bar."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from services.model_upload.copy import copy_model
    from services.model_upload.errors import UploadError
    from services.model_upload.sources import HubSource, LocalSource
    from services.model_upload.store import client_config

    if (repo_id is None) == (local_dir is None):
        raise click.UsageError("give exactly one of --repo-id or --local-dir")
    if prefix is None:
        if not model_name:
            raise click.UsageError("give --name (objects go to models/<name>/) or --prefix")
        prefix = f"{MODELS_PREFIX}/{model_name}/"
    if not prefix.endswith("/"):
        raise click.BadParameter("must end with '/'", param_hint="--prefix")
    patterns = None if all_files else list(allow_patterns or DEFAULT_ALLOW_PATTERNS)
    token = os.environ.get(token_env) or None
    try:
        source = (LocalSource(local_dir) if local_dir is not None
                  else HubSource(repo_id or "", revision, token=token, endpoint=hf_endpoint.rstrip("/")))
    except UploadError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=client_config(workers))
    except (BotoCoreError, ValueError) as exc:
        raise click.ClickException(f"cannot set up the S3 client ({exc}): check --endpoint-url and --region") from None
    console = Console(stderr=True)
    with Progress(*progress_columns(), console=console, transient=False) as progress:
        try:
            manifest = copy_model(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=workers,
                                  progress=_progress_adapter(progress), allow_patterns=patterns,
                                  part_size=part_size_mb * MIB)
        except UploadError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"s3://{bucket}/{prefix}: {len(manifest.files)} files, {manifest.total_bytes} bytes verified"
        + (f", commit {manifest.commit}" if manifest.commit else "")
    )
