"""The S3 model bucket: encrypted, TLS-only, private, versioned, access-logged."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from app_config.constants import MODELS_PREFIX
from app_config.model import ModelStoreConfig
from cdk_constructs.checkov import acknowledge_log_bucket


@dataclass(frozen=True)
class ModelStoreProps:
    """Props of :class:`ModelStore`.

    Attributes:
        config: the model_store section of the app config.
        model_name: folder of the served model: ``s3://<bucket>/models/<model_name>/``.
    """

    config: ModelStoreConfig
    model_name: str


class ModelStore(Construct):
    """The bucket vLLM's Run:ai streamer reads weights from.

    Exposes ``bucket``, ``model_prefix`` (``models/<name>/``), ``model_uri``
    (``s3://<bucket>/models/<name>/``) and :meth:`grant_read_model`, which grants read on that
    prefix only. Server access logs go to a separate log bucket. The removal policy comes from
    config: retain by default (model data survives ``cdk destroy``); ``destroy`` with
    ``auto_delete_objects`` empties and deletes both buckets.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ModelStoreProps) -> None:
        super().__init__(scope, construct_id)
        cfg = props.config
        destroy = cfg.removal_policy == "destroy"
        removal = cdk.RemovalPolicy.DESTROY if destroy else cdk.RemovalPolicy.RETAIN
        self.encryption_key: kms.Key | None = None
        if cfg.encryption == "KMS":
            self.encryption_key = kms.Key(
                self, "Key", enable_key_rotation=True, removal_policy=removal,
                description="Encrypts the model bucket",
            )
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot write to SSE-KMS buckets
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=cfg.auto_delete_objects,
        )
        acknowledge_log_bucket(self.log_bucket)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if self.encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.encryption_key,
            bucket_key_enabled=self.encryption_key is not None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="model-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent",
                    noncurrent_version_expiration=cdk.Duration.days(cfg.noncurrent_version_expiration_days),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(
                        cfg.abort_incomplete_multipart_upload_days
                    ),
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=cfg.auto_delete_objects,
        )
        self.model_prefix = f"{MODELS_PREFIX}/{props.model_name}/"
        self.model_uri = f"s3://{self.bucket.bucket_name}/{self.model_prefix}"

    def grant_read_model(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``s3:GetObject`` under the model prefix and ``s3:ListBucket`` limited to it.

        Nothing else of the bucket is readable; with KMS encryption, ``kms:Decrypt`` on the key.
        """
        grant = self._grant_prefix(grantee, ["s3:GetObject"])
        if self.encryption_key is not None:
            self.encryption_key.grant_decrypt(grantee)
        return grant

    def grant_write_model(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow writing, reading and listing under the model prefix only (the upload handler).

        ``s3:ListMultipartUploadParts`` (ListParts) lets a copy continue an unfinished upload.

        ``s3:ListBucketMultipartUploads`` (to abort an interrupted copy's uploads) gets its own
        statement on the bucket: ``s3:prefix`` is not a condition key of that action, so under the
        ListBucket prefix condition it would always be denied. The handler lists with
        ``Prefix=models/<name>/`` and may only abort uploads under that prefix.
        """
        grant = self._grant_prefix(
            grantee, ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                      "s3:ListMultipartUploadParts"]
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:ListBucketMultipartUploads"], resource_arns=[self.bucket.bucket_arn]
        )
        if self.encryption_key is not None:
            self.encryption_key.grant_encrypt_decrypt(grantee)
        return grant

    def _grant_prefix(self, grantee: iam.IGrantable, object_actions: list[str]) -> iam.Grant:
        """``object_actions`` on ``<prefix>*`` plus ``s3:ListBucket`` with an ``s3:prefix`` condition."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=object_actions,
            resource_arns=[self.bucket.arn_for_objects(f"{self.model_prefix}*")],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [self.model_prefix, f"{self.model_prefix}*"]}},
        )
        return grant
