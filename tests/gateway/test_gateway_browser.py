"""The chat page at ``/`` in headless Debian Chromium, against the real vLLM: type a message,
see tokens stream in, see the TTFT and tokens/s figures."""

from __future__ import annotations

import os
import re

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.browser]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")  # any Chromium or Chrome binary
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_url(vllm):  # type: ignore[no-untyped-def]
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    from .servers import ThreadedServer

    app = create_app(GatewaySettings(upstream_url=vllm.base_url))
    with ThreadedServer(app) as server:
        yield server.url + "/"


def test_chat_page_streams_tokens_and_shows_ttft(page_url: str, vllm) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), f"no browser at {CHROMIUM} (make deps-browser installs Debian's chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_url)
            page.wait_for_function("document.getElementById('model').textContent === %r" % vllm.served_model_name)
            # record every change of the newest answer bubble, to see the text grow token by token
            page.evaluate("""() => {
                window.__updates = [];
                new MutationObserver(() => {
                    const all = document.querySelectorAll('.assistant');
                    if (all.length) window.__updates.push(all[all.length - 1].textContent.length);
                }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});
            }""")
            page.click("#settings summary")
            page.fill("#maxtokens", "1500")
            # The tiny model is random: it may sample its end-of-sequence token after a few tokens,
            # too short to watch the text grow. Such an answer is not a fair trial: ask again.
            for attempt in range(1, 4):
                page.evaluate("() => { window.__updates = []; }")
                page.fill("#prompt", "Hello! How are you today?")
                page.click("#send")
                answer_bubble = page.locator(".assistant").nth(attempt - 1)
                answer_bubble.and_(page.locator("[data-done='true']")).wait_for(timeout=60_000)
                chunks = int(answer_bubble.get_attribute("data-chunks"))
                if chunks >= 20:
                    break
            answer = answer_bubble.inner_text()
            assert not page.locator(".assistant.error").count(), answer
            assert answer.strip(), "no tokens shown"
            assert chunks >= 20, f"every answer ended early ({chunks} chunks in the last)"
            updates = page.evaluate("window.__updates")
            assert len(set(updates)) >= 3, f"text did not grow in steps: {updates}"
            assert re.fullmatch(r"\d+ ms", page.locator("#ttft").inner_text()), page.locator("#ttft").inner_text()
            assert re.fullmatch(r"\d+(\.\d)? tok/s", page.locator("#tps").inner_text()), page.locator("#tps").inner_text()
            assert page.locator(".user").first.inner_text() == "Hello! How are you today?"
            assert errors == []
        finally:
            browser.close()
