"""Screenshots of the analyst UI for the README (docs/ui-search.png, docs/ui-campaign.png).

Serves an index that has had `promptsim dedup` (default: builds one from data/demo), signs in
with a fresh read+raw key in Debian's Chromium, pastes the demo campaign query, and saves
the search page and the campaign page.

Example:
    python bench/screenshots.py --index .promptsim-demo
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="an index directory with a dedup run")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from api.app import create_app
    from api.keys import KeyStore
    from api.settings import Settings

    key = KeyStore(args.index / "keys.json").create(f"screenshots-{int(time.time())}", ["read", "raw"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(args.index)), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    query = json.loads((REPO / "data/demo/queries.jsonl").read_text().splitlines()[0])["text"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 1000})
        page.goto(f"{base}/login")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Suspicious prompt").fill(query)
        page.get_by_role("button", name="Search").click()
        page.screenshot(path=str(args.out / "ui-search.png"))
        page.locator("#hits a[href^='/campaigns/']").first.click()
        page.screenshot(path=str(args.out / "ui-campaign.png"))
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out / 'ui-search.png'} and {args.out / 'ui-campaign.png'}")


if __name__ == "__main__":
    main()
