"""The chat page in headless Chromium against the local stack with its real model
(SmolLM2-135M-Instruct through the gateway, `real_stack` in tests/conftest.py).

- a real answer: TTFT, tokens/s and the replica the gateway named in its response header are
  shown under it; a screenshot is kept as a test artifact;
- the real model's Markdown (a code block) renders as HTML;
- raw HTML and javascript: links in an answer stay text (no element, no script runs);
- a 10-turn conversation completes: the page stops sending the oldest turns, says so, and no
  request overflows the model's context;
- a network failure and a gateway error show in the conversation, and the next message works;
- "New chat" starts over.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from services.gateway.contract import UPSTREAM_HEADER
from services.gateway.errors import upstream_unavailable

pytestmark = [pytest.mark.engine, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")  # any Chromium or Chrome binary
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Where screenshots are kept (the CI workflow uploads this folder).
ARTIFACTS = Path(os.environ.get("QVLLM_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
ANSWER_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), f"no browser at {CHROMIUM} (make deps-browser installs Debian's chromium)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, real_stack):  # type: ignore[no-untyped-def]
    """A phone-sized page on the stack's chat URL, model loaded; page errors collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.goto(real_stack.state.urls["gateway"] + "/")
    tab.wait_for_function("document.getElementById('context').textContent.endsWith('tokens')")
    yield tab
    context.close()


def ask(page, text: str) -> None:  # type: ignore[no-untyped-def]
    """Type ``text``, send it, wait until its answer is complete."""
    before = page.locator(".assistant").count()
    page.fill("#prompt", text)
    page.click("#send")
    page.locator(".assistant").nth(before).and_(page.locator("[data-done='true']")).wait_for(timeout=ANSWER_TIMEOUT_MS)


def greedy(route) -> None:  # type: ignore[no-untyped-def]
    """Let the page's request through with temperature 0: the assertions read the answer's words,
    and the model's default sampling (temperature 0.2) now and then starts the answer differently."""
    route.continue_(post_data=json.dumps({**json.loads(route.request.post_data), "temperature": 0}))


def sse(chunks: list[str]) -> str:
    """An answer as vLLM streams it (one delta per chunk, usage, [DONE])."""
    events = [{"id": "chatcmpl-t", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": c}, "finish_reason": None}]} for c in chunks]
    events.append({"id": "chatcmpl-t", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 30, "completion_tokens": len(chunks), "total_tokens": 30 + len(chunks)}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


@pytest.mark.timeout(1800)
def test_real_answer_with_ttft_speed_and_replica_and_a_screenshot(page, real_stack):
    headers: list[dict] = []
    page.on("response", lambda r: headers.append(r.headers) if r.url.endswith("/v1/chat/completions") else None)
    page.route("**/v1/chat/completions", greedy)
    ask(page, "What is the capital of France?")
    answer = page.locator(".assistant").last
    assert "Paris" in answer.inner_text()
    meta = page.locator(".meta").last
    assert re.fullmatch(r"\d+", meta.get_attribute("data-ttft-ms")), meta.inner_text()
    assert float(meta.get_attribute("data-tokens-per-s")) > 0
    assert re.search(r"TTFT \d+ ms · \d+(\.\d)? tok/s · \d+ tokens", meta.inner_text()), meta.inner_text()
    upstream = headers[-1].get(UPSTREAM_HEADER)
    engine = real_stack.state.urls["vllm-0"].removeprefix("http://")
    assert upstream == engine, headers[-1]  # the gateway's header names the one engine
    assert meta.get_attribute("data-upstream") == upstream and f"replica {upstream}" in meta.inner_text()
    assert re.fullmatch(r"\d+ ms", page.locator("#ttft").inner_text())
    assert page.locator("#context").inner_text() == f"{real_stack.state.model['max_model_len']} tokens"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "chat-page-real-answer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.errors == []


@pytest.mark.timeout(1800)
def test_real_models_markdown_renders(page):
    page.route("**/v1/chat/completions", greedy)
    ask(page, "Write a Python function that adds two numbers, in a markdown code block.")
    answer = page.locator(".assistant").last
    assert answer.locator("pre code").count() >= 1, answer.inner_html()
    assert "def " in answer.locator("pre code").first.inner_text()
    assert "```" not in answer.inner_text()  # the fences became a code block
    assert page.errors == []


@pytest.mark.timeout(600)
def test_html_in_an_answer_is_shown_as_text_never_run(page):
    """An answer carrying HTML and a javascript: link (prompt injection makes models write such
    things): the page shows the text, creates no element from it, runs nothing."""
    attack = ["Look: <img src=x onerror=\"window.__xss='img'\">", " <script>window.__xss='script'</script>",
              " [click](javascript:window.__xss='link') and **bold**", "\n\n<iframe src=\"/\"></iframe>"]
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"content-type": "text/event-stream"}, body=sse(attack)))
    ask(page, "Say something dangerous.")
    answer = page.locator(".assistant").last
    assert answer.locator("img, script, iframe").count() == 0
    assert answer.locator("strong").inner_text() == "bold"  # Markdown still renders
    assert "<img src=x onerror=" in answer.inner_text() and "<script>" in answer.inner_text()
    assert answer.locator("a").count() == 0  # markdown-it refuses javascript: links: they stay text
    assert "[click](javascript:" in answer.inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.errors == []


@pytest.mark.timeout(2400)
def test_ten_turn_conversation_stays_within_the_context(page, real_stack):
    """200-token answers (vLLM's ignore_eos added on the way, so each is full length) fill the
    2048-token context after a few turns: every one of 10 turns must still be answered."""
    max_len = int(real_stack.state.model["max_model_len"])
    sent: list[dict] = []
    statuses: list[int] = []

    def long_answers(route) -> None:  # type: ignore[no-untyped-def]
        body = json.loads(route.request.post_data)
        sent.append(body)
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True}))

    page.route("**/v1/chat/completions", long_answers)
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/v1/chat/completions") else None)
    page.click("#settings summary")
    page.fill("#maxtokens", "200")
    for turn in range(1, 11):
        ask(page, f"Turn {turn}: tell me one more fact about the sea.")
    assert statuses == [200] * 10, statuses
    assert page.locator(".assistant.error").count() == 0
    assert page.locator(".assistant").count() == 10
    # the oldest turns stopped being sent, and the page says so
    assert len(sent[-1]["messages"]) < 19, [m["content"][:20] for m in sent[-1]["messages"]]
    assert sent[-1]["messages"][0]["role"] == "user"
    assert "Turn 1:" not in json.dumps(sent[-1]["messages"])
    assert sent[-1]["messages"][-1]["content"] == "Turn 10: tell me one more fact about the sea."
    assert page.locator(".dropped").count() >= 2
    notice = page.locator(".notice").inner_text()
    assert re.match(r"\d+ earlier messages are no longer sent to the model: its context holds %d tokens" % max_len,
                    notice), notice
    for meta in page.locator(".meta").all():
        assert re.match(r"TTFT \d+ ms", meta.inner_text()), meta.inner_text()
    assert page.errors == []


@pytest.mark.timeout(1800)
def test_errors_show_in_the_conversation_and_the_next_message_works(page):
    failures = iter(["network", "gateway"])
    unavailable = upstream_unavailable("connection refused")

    def flaky(route) -> None:  # type: ignore[no-untyped-def]
        kind = next(failures, None)
        if kind == "network":
            route.abort("connectionreset")  # the phone's Wi-Fi drops
        elif kind == "gateway":  # the gateway's own 503 while the engine restarts
            route.fulfill(status=unavailable.status, headers={"content-type": "application/json", **unavailable.headers},
                          body=json.dumps(unavailable.body()))
        else:
            greedy(route)

    page.route("**/v1/chat/completions", flaky)
    ask(page, "What is the capital of France?")
    first = page.locator(".assistant").nth(0)
    assert "error" in first.get_attribute("class")
    assert first.inner_text().startswith("Error: the gateway could not be reached")
    ask(page, "What is the capital of France?")
    second = page.locator(".assistant").nth(1)
    assert second.inner_text() == f"Error: {unavailable.message}"
    assert page.locator(".user.failed").count() == 2
    ask(page, "What is the capital of France?")
    third = page.locator(".assistant").nth(2)
    assert "error" not in third.get_attribute("class") and "Paris" in third.inner_text()
    assert not page.locator("#send").is_disabled()
    assert page.errors == []


@pytest.mark.timeout(1800)
def test_new_chat_starts_over(page):
    sent: list[dict] = []
    page.route("**/v1/chat/completions",
               lambda route: (sent.append(json.loads(route.request.post_data)), route.continue_()))
    ask(page, "What is the capital of France?")
    page.click("#newchat")
    assert page.locator("#log > *").count() == 0
    ask(page, "What is the capital of Italy?")
    assert [m["content"] for m in sent[-1]["messages"]] == ["What is the capital of Italy?"]
    assert page.errors == []
