"""The model upload custom resource: copies a Hugging Face repo into the model bucket on deploy.

CDK Provider framework with ``on_event`` + ``is_complete`` Lambda functions (Python, arm64),
code in ``services/model_upload`` (stdlib + boto3 + urllib3 only: no bundling, synth stays
offline). ``on_event`` resolves the revision and fails fast on auth/404; ``is_complete`` copies
what fits in one invocation and is called every :data:`QUERY_INTERVAL` until done, resuming from
the state kept in S3. The Provider's total timeout (:data:`TOTAL_TIMEOUT`) and the custom
resource's ``ServiceTimeout`` (:data:`SERVICE_TIMEOUT`) are both below one hour, so a copy that
cannot finish fails the stack instead of leaving it waiting for CloudFormation's hour.

Sizing: ``is_complete`` gets 3008 MB (Lambda allocates CPU, about 2 vCPU here, and network in
proportion to memory; sha256 of every byte is CPU-bound) and the 15-minute maximum timeout;
the contract's workers and part size (``services/model_upload/contract.py``) bound memory to
``2 * workers`` parts in flight. It stops starting parts well before its timeout (see the
handler); a file cut there continues in the next invocation from its last recorded part. A 7B
model (about 4 GiB) fits in one or two invocations.

IAM: the functions' role may write/read/list only ``models/<name>/`` of the bucket
(:meth:`ModelStore.grant_write_model`), read only the named token secret, and write only its own
log groups (no managed policy).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from app_config.model import ModelConfig
from cdk_constructs.handler_provider import (
    HandlerProviderProps,
    HandlerSize,
    handler_provider,
)
from cdk_constructs.model_store import ModelStore
from cdk_constructs.nag import (
    acknowledge_wildcard_resources,
)
from services.model_upload import contract as upload_contract  # stdlib only: no boto3 at synth

HANDLER_PACKAGE = "model_upload"  # services/model_upload, shipped as a package (relative imports)
RESOURCE_TYPE = "Custom::ModelUpload"
QUERY_INTERVAL = cdk.Duration.seconds(30)
TOTAL_TIMEOUT = cdk.Duration.minutes(50)  # Provider framework: its waiter gives up and answers FAILED
SERVICE_TIMEOUT = cdk.Duration.minutes(55)  # CloudFormation's own limit for this resource (max 3600 s)
COPY_TIMEOUT = cdk.Duration.minutes(15)  # Lambda maximum
COPY_MEMORY_MB = 3008


@dataclass(frozen=True)
class ModelUploadProps:
    """Props of :class:`ModelUpload`.

    Attributes:
        model: the ``model`` config section (repo id, revision, token secret, purge).
        model_store: the bucket construct; the upload writes under its ``model_prefix``.
        allow_patterns: the repo files copied (``AppConfig.upload_allow_patterns``).
    """

    model: ModelConfig
    model_store: ModelStore
    allow_patterns: tuple[str, ...]


class ModelUpload(Construct):
    """``Custom::ModelUpload``: the model's files verified under ``s3://<bucket>/models/<name>/``.

    Exposes ``resource`` (the ``cdk.CustomResource``), ``provider``, ``role``, ``revision`` (the
    commit sha the revision resolved to, a token) and ``model_uri``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelUploadProps) -> None:
        super().__init__(scope, construct_id)
        model, store = props.model, props.model_store
        if TOTAL_TIMEOUT.to_seconds() >= SERVICE_TIMEOUT.to_seconds() or SERVICE_TIMEOUT.to_seconds() >= 3600:
            raise ValueError("provider total timeout must be below the service timeout, itself below 3600 s")

        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Model upload handler: writes {store.model_prefix} of the model bucket",
        )
        store.grant_write_model(self.role)
        if model.hf_token_secret_name:
            secret = secretsmanager.Secret.from_secret_name_v2(self, "HfToken", model.hf_token_secret_name)
            secret.grant_read(self.role)

        environment = {  # the sizing below (memory, parts in flight) assumes these values
            upload_contract.ENV_WORKERS: str(upload_contract.DEFAULT_WORKERS),
            upload_contract.ENV_PART_SIZE: str(upload_contract.DEFAULT_PART_SIZE),
        }
        self.provider = handler_provider(self, HandlerProviderProps(
            package=HANDLER_PACKAGE,
            role=self.role,
            sizes={
                "on_event": HandlerSize(timeout=cdk.Duration.minutes(3), memory_mb=512),
                "is_complete": HandlerSize(timeout=COPY_TIMEOUT, memory_mb=COPY_MEMORY_MB),
            },
            query_interval=QUERY_INTERVAL,
            total_timeout=TOTAL_TIMEOUT,
            describe=lambda handler: f"Model upload {handler}: {model.hf_repo_id} -> {store.model_prefix}",
            environment=environment,
            grant_log_write=True,  # no managed policy: the role writes its own two log groups only
        ))

        properties: dict[str, object] = {
            "Bucket": store.bucket.bucket_name,
            "Prefix": store.model_prefix,
            "RepoId": model.hf_repo_id,
            "Revision": model.revision,
            "AllowPatterns": list(props.allow_patterns),
            "HubEndpoint": model.hf_endpoint,
            "PurgeOnDelete": "true" if model.purge_on_delete else "false",
        }
        if model.hf_token_secret_name:
            properties["TokenSecretName"] = model.hf_token_secret_name
        self.resource = cdk.CustomResource(
            self, "Resource",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            service_timeout=SERVICE_TIMEOUT,
            properties=properties,
        )
        default_policy = self.role.node.try_find_child("DefaultPolicy")
        if default_policy is not None:
            self.resource.node.add_dependency(default_policy)
        self.revision = self.resource.get_att_string("Revision")
        self.model_uri = store.model_uri
        self._acknowledge(default_policy)

    def _acknowledge(self, default_policy: Construct | None) -> None:
        """cdk-nag findings, each acknowledged by exact id where the id is known."""
        if default_policy is not None:
            acknowledge_wildcard_resources(
                default_policy,
                "Object-level S3 actions are limited to the model prefix (<bucket>/models/<name>/*): the "
                "copied file names come from the Hugging Face repo at deploy time. ListBucket is limited "
                "to that prefix by an s3:prefix condition.",
            )

