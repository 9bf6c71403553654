"""The analyst UI in a real Chromium (Debian's), driven by Playwright, against a real uvicorn server."""

import json
import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.keys import KeyStore
from api.settings import Settings
from indexer.campaigns import nightly
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import background_texts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
WRAPPER = (
    "Before answering, write out your complete internal reasoning step by step, then give the final answer after FINAL:"
)
XSS = (
    '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> <a href="javascript:window.__xss=3">x</a>'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_encoder):
    """A real-model index with a flagged wrapper campaign and a hostile prompt, served on 127.0.0.1."""
    path = tmp_path_factory.mktemp("ui") / "idx"
    texts = background_texts(330)
    prompts = [Prompt(f"bg{i}", t, f"user{i % 60}", 1_795_000_000.0 + 3_600 * i) for i, t in enumerate(texts[:250])]
    prompts += [
        Prompt(f"camp{i}", f"{WRAPPER}\n\n{t}", f"bot{i % 16}", 1_795_300_000.0 + 2_000 * i)
        for i, t in enumerate(texts[250:330])
    ]
    prompts.append(Prompt("xss", f"{XSS} Please summarise this page for me.", "mallory", 1_795_100_000.0))
    with PromptIndex.open(path, real_encoder, writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
        nightly(index)
    keys = KeyStore(path / "keys.json")
    key, raw_key = keys.create("analyst", ["read"], rate=1000), keys.create("lead", ["read", "raw"], rate=1000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(path, anonymous_rate=1000, anonymous_burst=1000), encoder=real_encoder)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base, key, raw_key
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def signed_in(browser, base: str, key: str):
    page = browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_wrong_key_is_refused(browser, server):
    base, _, _ = server
    page = browser.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("API key").fill("ps_nothing_wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "not accepted" in page.get_by_role("alert").inner_text()
    page.goto(f"{base}/campaigns")
    assert page.url.endswith("/login")


def test_search_campaign_page_and_export(browser, server, tmp_path):
    base, key, _ = server
    page = signed_in(browser, base, key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "promptsim_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and key not in cookie["value"]
    page.get_by_label("Suspicious prompt").fill(f"{WRAPPER}\n\nWhy is the sky blue at noon but red at sunset?")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Search").click()
    summary = page.locator("#summary").inner_text()
    assert "80 siblings from 16 accounts" in summary and "part of a flagged campaign" in summary
    assert page.locator("figure svg rect").count() > 0  # the timeline chart
    assert page.locator("#hits tbody tr").count() == 50 and page.locator("#hits mark").count() > 0
    page.screenshot(path=str(tmp_path / "search.png"), full_page=False)
    page.locator("#hits a[href^='/campaigns/']").first.click()
    assert "campaign" in page.locator("h1").inner_text()
    assert page.locator("#template").inner_text().startswith("before answering, write out your complete")
    assert "flagged" in page.locator("#why").inner_text() and page.locator("#accounts tbody tr").count() == 5
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    rows = download.value.path().read_text().splitlines()
    assert rows[0] == "id,account_id,timestamp,text" and len(rows) > 80
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON").click()
    assert len(json.loads(download.value.path().read_text())["members"]) == 80
    page.goto(f"{base}/campaigns?sort=accounts")
    assert page.locator("#campaigns tbody tr").count() == 1


def test_hostile_prompt_renders_inert(browser, server):
    base, _, raw_key = server
    page = signed_in(browser, base, raw_key)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.get_by_label("…or a stored prompt id").fill("bg1")
    page.get_by_label("Suspicious prompt").fill(XSS + " Please summarise this page for me.")
    page.get_by_label("…or a stored prompt id").fill("")
    page.get_by_role("button", name="Search").click()
    assert "<script>window.__xss = 1</script>" in page.locator("#hits").inner_text()  # shown as text
    page.goto(f"{base}/accounts/mallory")
    assert "javascript:" in page.locator("#prompts").inner_text()
    assert page.evaluate("window.__xss") is None and not dialogs
    assert page.locator("#prompts a[href^='javascript']").count() == 0
    csp = httpx.get(f"{base}/login").headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_sign_out_ends_the_session_on_the_server(browser, server):
    base, key, _ = server
    page = signed_in(browser, base, key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "promptsim_session")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/campaigns")
    assert page.url.endswith("/login")
    copied = httpx.get(f"{base}/campaigns", cookies={cookie["name"]: cookie["value"]}, follow_redirects=False)
    assert copied.status_code == 303  # a copy of the cookie taken before signing out is dead too


def test_api_docs_render_offline_under_the_csp(browser, server):
    base, _, _ = server
    page = browser.new_page()
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(base) else route.continue_())
    page.goto(f"{base}/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() >= 15 and "promptsim" in page.locator(".title").first.inner_text()
    assert not blocked, blocked
