"""CloudFormation custom resource ``Custom::ModelUpload`` (CDK Provider framework handlers).

``on_event`` (Create/Update/Delete) validates the properties, resolves the revision (a branch
or tag becomes a commit sha, returned as the ``Revision`` attribute), requires every shard the
safetensors index names, lists the destination prefix and checks access to the first file
(:func:`~.copy.preflight`), so a gated repo, a bad token, a missing revision or shard, or a
missing bucket fails in seconds instead of after the waiter's first interval.
``is_complete`` then copies as much as fits in the invocation's time budget and returns
``IsComplete: false`` until every file is verified and the completion manifest is written.
Progress lives in S3 (object metadata, see :mod:`.copy`), so each invocation resumes where the
previous one stopped. Every failure propagates as one line with the deploy's advice
(:meth:`UploadError.reason` for :attr:`Audience.DEPLOY`): the Provider framework's
``safeHandler`` turns it into a FAILED response carrying that line as ``Reason`` at once (only
``IsComplete: false`` makes its waiter ask again, an exception is not retried), and its total
timeout (below one hour, set by the construct) ends any copy that cannot finish. Transient
network faults are retried inside the invocation (backoff with jitter, Range resume), and a
large file stopped by the invocation's deadline continues in the next one from its last part.

Update policy: **in place**. The physical id is the destination (``s3://bucket/models/<name>/``);
a changed revision or pattern set keeps the id and copies into the same prefix:
the manifest is deleted first (the prefix is no longer "complete"), files whose digest is
unchanged are kept (tokenizers and configs often survive a revision bump), changed or new files
are copied, files no longer selected are deleted, and the new manifest is written last.
Why not a new prefix per revision: the vLLM pods' ``--model`` URI and their read-only IAM
grant (:meth:`ModelStore.grant_read_model`) name ``models/<name>/``; a per-revision prefix
would change the Deployment and grant on every bump and double the storage while both copies
exist. Running pods already hold their weights in memory; a pod starting during an update can
check the manifest (absent until the update finishes). A changed ``model.name`` (new prefix)
changes the physical id, so CloudFormation deletes the old resource after the update.

Delete keeps the objects unless ``PurgeOnDelete`` is true. A Delete whose physical id is not
the one this handler issues for the given bucket and prefix (the Provider's failed-create
marker, a log-stream name, anything else) is a no-op with zero S3 calls (a rollback after a
failed Create sends such ids, and purging a prefix derived from one would delete the wrong
objects): an id is never turned into a prefix.

Resource properties (strings, as CloudFormation passes them): ``Bucket``, ``Prefix``
(``models/<name>/``), ``RepoId``, ``Revision``, ``AllowPatterns`` (list), ``HubEndpoint``,
``TokenSecretName`` (optional), ``PurgeOnDelete`` (``"true"``/``"false"``).
Attributes: ``Revision`` (commit sha), ``ModelUri``, ``FileCount``, ``TotalBytes``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .contract import DEFAULT_PART_SIZE, DEFAULT_WORKERS, ENV_PART_SIZE, ENV_WORKERS
from .copy import copy_step, preflight, purge_prefix
from .errors import Audience, ConfigurationError, Remedy, UploadError
from .sources import DEFAULT_HUB_ENDPOINT, HubSource
from .store import client_config

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

PHYSICAL_ID_PREFIX = "qvllm-model-upload:"
# Read once per container (the functions' environment does not change between invocations).
WORKERS = int(os.environ.get(ENV_WORKERS, DEFAULT_WORKERS))
PART_SIZE = int(os.environ.get(ENV_PART_SIZE, DEFAULT_PART_SIZE))
MIN_SAFETY_SECONDS = 120  # stop starting files this long (at least) before the Lambda timeout
SAFETY_FRACTION = 0.4  # ... or this share of the remaining time, whichever is larger


@dataclass(frozen=True)
class UploadProps:
    """Validated resource properties. Raises :class:`ConfigurationError` naming the property."""

    bucket: str
    prefix: str
    repo_id: str
    revision: str
    allow_patterns: tuple[str, ...] | None
    hub_endpoint: str
    token_secret_name: str | None
    purge_on_delete: bool

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "UploadProps":
        """Parse ``event["ResourceProperties"]``."""
        props = event.get("ResourceProperties") or {}

        def need(name: str) -> str:
            value = props.get(name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"resource property {name} is required (non-empty string), got {value!r}")
            return value

        prefix = need("Prefix")
        if not prefix.endswith("/") or prefix.startswith("/"):
            raise ConfigurationError(f"resource property Prefix must look like 'models/<name>/', got {prefix!r}")
        patterns = props.get("AllowPatterns")
        if patterns is not None and (not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns)):
            raise ConfigurationError(f"resource property AllowPatterns must be a list of strings, got {patterns!r}")
        purge = str(props.get("PurgeOnDelete", "false")).lower()
        if purge not in ("true", "false"):
            raise ConfigurationError(f"resource property PurgeOnDelete must be 'true' or 'false', got {purge!r}")
        return cls(
            bucket=need("Bucket"),
            prefix=prefix,
            repo_id=need("RepoId"),
            revision=need("Revision"),
            allow_patterns=tuple(patterns) if patterns is not None else None,
            hub_endpoint=str(props.get("HubEndpoint") or DEFAULT_HUB_ENDPOINT).rstrip("/"),
            token_secret_name=props.get("TokenSecretName") or None,
            purge_on_delete=purge == "true",
        )

    @property
    def physical_id(self) -> str:
        """The id this handler issues: ``qvllm-model-upload:s3://<bucket>/<prefix>``."""
        return f"{PHYSICAL_ID_PREFIX}s3://{self.bucket}/{self.prefix}"

    @property
    def model_uri(self) -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{self.prefix}"


class DeployError(Exception):
    """A failure as CloudFormation shows it: one line, the deploy's advice."""


def _reported(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Turn every failure of ``handler`` into one :class:`DeployError` line (logged, never the token)."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        try:
            return handler(event, context)
        except UploadError as exc:
            reason = exc.reason(Audience.DEPLOY)
        except Exception as exc:  # noqa: BLE001 - a bug: still one line for CloudFormation, trace in the log
            LOG.exception("model upload failed unexpectedly")
            reason = f"model upload failed unexpectedly ({type(exc).__name__}: {exc}); see the function's log"
        LOG.error("model upload failed: %s", reason)
        raise DeployError(reason) from None

    return wrapper


def _s3_client() -> Any:
    return boto3.client("s3", config=client_config(WORKERS))


def read_token(secret_name: str | None) -> str | None:
    """The Hugging Face token from Secrets Manager: the plain ``SecretString``, or its JSON key
    ``token`` / ``HF_TOKEN``. ``None`` when no secret is configured."""
    if not secret_name:
        return None
    client = boto3.client("secretsmanager")
    try:
        value = client.get_secret_value(SecretId=secret_name)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        raise ConfigurationError(
            f"the Secrets Manager secret {secret_name!r} (model.hf_token_secret_name) does not exist",
            "create it in the stack's region, or fix model.hf_token_secret_name") from None
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"cannot read the Secrets Manager secret {secret_name!r}: {exc}", Remedy.same(
            "the upload role may read only the secret named by model.hf_token_secret_name; check the name and "
            "its KMS key policy")) from None
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            data = {}
        value = str(data.get("token") or data.get("HF_TOKEN") or "")
    if not value:
        raise ConfigurationError(f"the secret {secret_name!r} holds no token",
                                 "store the token as a plain string, or as JSON with key 'token' or 'HF_TOKEN'")
    return value


def _source(props: UploadProps, revision: str, token: str | None) -> HubSource:
    return HubSource(props.repo_id, revision, token=token, endpoint=props.hub_endpoint)


def _deadline(context: Any) -> float | None:
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    remaining = context.get_remaining_time_in_millis() / 1000.0
    return time.monotonic() + remaining - max(MIN_SAFETY_SECONDS, SAFETY_FRACTION * remaining)


@_reported
def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider framework onEvent handler. Returns ``PhysicalResourceId`` and ``Data``.

    Raises:
        DeployError: one line with the deploy's advice; the Provider framework answers FAILED with it.
    """
    request = event.get("RequestType")
    LOG.info("%s %s", request, event.get("LogicalResourceId"))
    if request == "Delete":
        return _on_delete(event)
    if request not in ("Create", "Update"):
        raise ConfigurationError(f"unknown RequestType {request!r}")
    props = UploadProps.from_event(event)
    source = _source(props, props.revision, read_token(props.token_secret_name))
    snapshot, entries = preflight(source, s3_client=_s3_client(), bucket=props.bucket, prefix=props.prefix,
                                  allow_patterns=props.allow_patterns)
    return {
        "PhysicalResourceId": props.physical_id,
        "Data": {
            "Revision": snapshot.commit,
            "ModelUri": props.model_uri,
            "FileCount": str(len(entries)),
            "TotalBytes": str(sum(e.size for e in entries)),
        },
    }


def _on_delete(event: dict[str, Any]) -> dict[str, Any]:
    physical = str(event.get("PhysicalResourceId", ""))
    try:
        props = UploadProps.from_event(event)
    except ConfigurationError:
        props = None
    if props is None or physical != props.physical_id:
        LOG.info("Delete of %r: not an id this handler issued; nothing to do", physical)
        return {"PhysicalResourceId": physical}
    if props.purge_on_delete:
        deleted = purge_prefix(_s3_client(), props.bucket, props.prefix)
        LOG.info("purged %d objects under %s", deleted, props.model_uri)
    else:
        LOG.info("keeping the objects under %s (PurgeOnDelete is false)", props.model_uri)
    return {"PhysicalResourceId": physical}


@_reported
def is_complete(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider framework isComplete handler: copy within this invocation's budget.

    Returns ``{"IsComplete": bool, "Data": {...}}``; raises :class:`DeployError` on any failure
    (FAILED response).
    """
    if event.get("RequestType") == "Delete":
        return {"IsComplete": True}
    props = UploadProps.from_event(event)
    commit = (event.get("Data") or {}).get("Revision")
    if not commit:
        raise ConfigurationError("isComplete event carries no Data.Revision from onEvent")
    result = copy_step(
        _source(props, commit, read_token(props.token_secret_name)),
        s3_client=_s3_client(),
        bucket=props.bucket,
        prefix=props.prefix,
        allow_patterns=props.allow_patterns,
        workers=WORKERS,
        part_size=PART_SIZE,
        deadline=_deadline(context),
    )
    LOG.info("copied %d files (%d bytes), %d already verified, %d remaining", len(result.copied),
             result.bytes_copied, len(result.skipped), len(result.remaining))
    if not result.done:
        # The Provider framework refuses Data with IsComplete false (it fails the resource).
        return {"IsComplete": False}
    data = {
        "Revision": commit,
        "ModelUri": props.model_uri,
        "FileCount": str(len(result.skipped) + len(result.copied)),
        "TotalBytes": str(result.total_bytes),
    }
    return {"IsComplete": True, "Data": data}
