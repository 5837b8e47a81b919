"""The model upload's contract with the rest of the app: S3 layout, Lambda environment, sizing.

This module is the one owner of these values. It imports nothing outside the standard
library, and it ships inside the handlers' Lambda asset (the ``model_upload`` package), so the
handler, the ``qvllm upload-model`` command, the local stack and the CDK construct read the
same names: :mod:`app_config.constants` re-exports the S3 layout for the stacks, charts and
tools, and ``cdk_constructs/model_upload.py`` writes the sizing into the functions' environment.
"""

from __future__ import annotations

MODELS_PREFIX = "models"  # s3://<bucket>/models/<name>/ (vLLM's --model)
COMPLETION_MANIFEST = ".qvllm-complete.json"  # written last by the copy, only when every file is verified

# Environment of the copy function (``is_complete``), set by cdk_constructs/model_upload.py.
ENV_WORKERS = "UPLOAD_WORKERS"  # files copied in parallel by one invocation
ENV_PART_SIZE = "UPLOAD_PART_SIZE"  # S3 multipart part size, bytes

DEFAULT_WORKERS = 8  # files in parallel; 2 * DEFAULT_WORKERS parts in memory at most
# 16 MiB parts: each is one ranged download and one upload, so the two overlap within a file
# (64 MiB parts left a 300 MiB file five parts that all downloaded before any uploaded: half the
# speed in bench/upload.py), 16 parts in flight hold 256 MiB, and a resumed copy re-downloads
# little. S3 allows 10,000 parts, so files over 156 GiB get larger parts (plan.part_size_for).
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's limit of parts per multipart upload
