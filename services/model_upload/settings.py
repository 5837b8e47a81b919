"""Names shared with the rest of the app, importable inside and outside Lambda.

In the repo (CLI, local stack, tests) they come from :mod:`app_config.constants`, the single
source. The Lambda asset holds only ``model_upload/``, so there the construct passes the same
values as environment variables (``QVLLM_COMPLETION_MANIFEST``, ``QVLLM_MODELS_PREFIX``), set
from :mod:`app_config.constants` at synth time.
"""

from __future__ import annotations

import os

# Environment of the Lambda functions, set by cdk_constructs/model_upload.py.
ENV_COMPLETION_MANIFEST = "QVLLM_COMPLETION_MANIFEST"
ENV_MODELS_PREFIX = "QVLLM_MODELS_PREFIX"
ENV_WORKERS = "UPLOAD_WORKERS"  # files copied in parallel by one is_complete invocation
ENV_PART_SIZE = "UPLOAD_PART_SIZE"  # S3 multipart part size, bytes
DEFAULT_WORKERS = 8
DEFAULT_PART_SIZE = 64 * 1024 * 1024  # 64 MiB: 10,000 parts cover 625 GiB files

try:  # in the repo
    from app_config.constants import COMPLETION_MANIFEST, MODELS_PREFIX
except ImportError:  # in the Lambda runtime: values injected by cdk_constructs/model_upload.py
    COMPLETION_MANIFEST = os.environ[ENV_COMPLETION_MANIFEST]
    MODELS_PREFIX = os.environ[ENV_MODELS_PREFIX]

# Object metadata keys (S3 stores them as x-amz-meta-<key>): progress lives on the objects.
META_SHA256 = "qvllm-sha256"
META_GIT_OID = "qvllm-git-oid"
META_COMMIT = "qvllm-commit"

# Never copied unless a pattern asks for it explicitly: other checkpoints of the same model
# (Meta's ``original/`` consolidated .pth files) that vLLM's safetensors load does not read.
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = ("original/*",)

# Suffixes of weight files: such a file starting with the Git LFS pointer header is a stub
# (case B19), never tensor data.
WEIGHT_SUFFIXES: tuple[str, ...] = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz",
)
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
