"""Model store stack: the model bucket (and, from config, the upload custom resource)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from app_config import AppConfig
from cdk_constructs.model_store import ModelStore, ModelStoreProps
from cdk_constructs.model_upload import ModelUpload, ModelUploadProps


class ModelStoreStack(cdk.Stack):
    """Holds :class:`ModelStore` and, when ``model.upload_on_deploy``, :class:`ModelUpload`.

    Exposes ``model_store`` and ``model_upload`` (``None`` when the upload is off); outputs the
    model URI and, with the upload, the commit sha the model revision resolved to.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="qvllm: S3 model bucket and model upload", **kwargs)
        self.model_store = ModelStore(
            self, "ModelStore", ModelStoreProps(config=config.model_store, model_name=config.model.name)
        )
        cdk.CfnOutput(self, "ModelUri", value=self.model_store.model_uri, description="vLLM --model")
        cdk.CfnOutput(self, "ModelBucketName", value=self.model_store.bucket.bucket_name)
        self.model_upload: ModelUpload | None = None
        if config.model.upload_on_deploy:
            self.model_upload = ModelUpload(
                self, "ModelUpload", ModelUploadProps(model=config.model, model_store=self.model_store,
                                                   allow_patterns=tuple(config.upload_allow_patterns))
            )
            cdk.CfnOutput(self, "ModelRevision", value=self.model_upload.revision,
                          description="Commit sha of the uploaded model revision")
