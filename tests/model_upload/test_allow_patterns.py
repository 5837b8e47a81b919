"""The upload's default patterns copy every file the pinned vLLM and transformers read from a model
folder (names taken from the engine venv's own packages), and the model's Python code only when
vLLM is told to trust it."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app_config import config_from_dict
from app_config.model import DEFAULT_ALLOW_PATTERNS
from services.model_upload.copy import copy_model
from services.model_upload.sources import HubSource
from tests.support.fake_hub import FakeHub

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"  # installed by make test

# Prints the file names vLLM and transformers look for in a model folder, from their own constants.
NAMES_SCRIPT = r"""
import json
from transformers.utils import (CONFIG_NAME, GENERATION_CONFIG_NAME, IMAGE_PROCESSOR_NAME, PROCESSOR_NAME,
                                SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, VIDEO_PROCESSOR_NAME)
from transformers.utils.hub import CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE, LEGACY_PROCESSOR_CHAT_TEMPLATE_FILE
from transformers.tokenization_utils_base import ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE
from transformers.models.llama.tokenization_llama import VOCAB_FILES_NAMES as LLAMA
from transformers.models.qwen2.tokenization_qwen2 import VOCAB_FILES_NAMES as QWEN2
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS, get_quantization_config
names = {CONFIG_NAME, GENERATION_CONFIG_NAME, IMAGE_PROCESSOR_NAME, PROCESSOR_NAME, VIDEO_PROCESSOR_NAME,
         SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, CHAT_TEMPLATE_FILE, LEGACY_PROCESSOR_CHAT_TEMPLATE_FILE,
         CHAT_TEMPLATE_DIR + "/tool_use.jinja", ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE,
         *LLAMA.values(), *QWEN2.values()}
for method in QUANTIZATION_METHODS:
    try:
        names.update(get_quantization_config(method).get_config_filenames())
    except Exception:
        pass
print("NAMES=" + json.dumps(sorted(names)))
"""


@pytest.mark.engine  # runs vLLM's and transformers' own code in the engine venv
def test_default_patterns_match_every_file_vllm_and_transformers_read() -> None:
    assert ENGINE_PYTHON.exists(), "make test installs the engine venv (.venv-vllm)"
    out = subprocess.run([str(ENGINE_PYTHON), "-c", NAMES_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    names = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("NAMES="))[6:])
    assert "hf_quant_config.json" in names and "additional_chat_templates/tool_use.jinja" in names
    missed = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in DEFAULT_ALLOW_PATTERNS)]
    assert missed == []


def test_remote_code_is_copied_only_when_vllm_trusts_it() -> None:
    assert "*.py" not in config_from_dict({}).upload_allow_patterns
    trusting = config_from_dict({"vllm": {"extra_args": ["--trust-remote-code"]}})
    assert trusting.upload_allow_patterns == DEFAULT_ALLOW_PATTERNS + ["*.py"]


def test_a_tiktoken_model_with_templates_and_a_processor_is_copied_whole(hub: FakeHub, s3: Any, bucket: str) -> None:
    files = {
        "config.json": b"{}", "model.safetensors": b"\0" * 64, "qwen.tiktoken": b"IQ== 0\n",
        "tokenizer_config.json": b"{}", "additional_chat_templates/tool_use.jinja": b"{{ messages }}",
        "processor_config.json": b"{}", "hf_quant_config.json": b"{}", "tekken.json": b"{}",
        "modeling_custom.py": b"# remote code", "README.md": b"# card", "original/consolidated.pth": b"x",
    }
    hub.add_repo("org/tik", files)
    manifest = copy_model(HubSource("org/tik", endpoint=hub.base_url), s3_client=s3, bucket=bucket,
                          prefix="models/tik/", allow_patterns=DEFAULT_ALLOW_PATTERNS)
    assert {f.path for f in manifest.files} == set(files) - {"modeling_custom.py", "README.md", "original/consolidated.pth"}
    manifest = copy_model(HubSource("org/tik", endpoint=hub.base_url), s3_client=s3, bucket=bucket,
                          prefix="models/tik/", allow_patterns=DEFAULT_ALLOW_PATTERNS + ["*.py"])
    assert "modeling_custom.py" in {f.path for f in manifest.files}
