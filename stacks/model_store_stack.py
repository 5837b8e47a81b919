"""Model store stack: the model bucket (and, from config, the upload custom resource)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from app_config import AppConfig
from cdk_constructs.model_store import ModelStore, ModelStoreProps


class ModelStoreStack(cdk.Stack):
    """Holds :class:`ModelStore`; exposes ``model_store`` and outputs the model URI."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="qvllm: S3 model bucket and model upload", **kwargs)
        self.model_store = ModelStore(
            self, "ModelStore", ModelStoreProps(config=config.model_store, model_name=config.model.name)
        )
        cdk.CfnOutput(self, "ModelUri", value=self.model_store.model_uri, description="vLLM --model")
        cdk.CfnOutput(self, "ModelBucketName", value=self.model_store.bucket.bucket_name)
