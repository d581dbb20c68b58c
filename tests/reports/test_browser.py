"""The published pages open in a real browser (headless Chromium) without errors.

Playwright drives the system's Chromium (Debian package ``chromium``; ``.ci/run``
installs it). Screenshots of every page are saved to ``build/screenshots/`` (or
``$RENEWFORECAST_SCREENSHOTS``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "install one with `apt-get install -y chromium` (Debian/Ubuntu) or point "
    "RENEWFORECAST_CHROMIUM at a Chromium or Chrome executable"
)
# As the machine's own checks start it: no sandbox (CI runs as root) and no
# background connections, which a closed network refuses noisily.
FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    candidates = [
        os.environ.get("RENEWFORECAST_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


@pytest.mark.slow
def test_published_pages_open_without_console_errors_or_broken_images(hostile_report):
    executable = _chromium()
    if executable is None:
        pytest.skip(f"no Chromium found, so the published pages were not opened in a browser: {INSTALL_HINT}")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("RENEWFORECAST_SCREENSHOTS") or ROOT / "build" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(hostile_report.glob("*.html"), key=lambda p: (p.name != "index.html", p.name))
    assert pages[0].name == "index.html" and len(pages) >= 6

    problems: list[str] = []
    seen_images = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            current = {"page": ""}

            def note(kind: str, text: str) -> None:
                problems.append(f"{current['page']}: {kind}: {text[:300]}")

            tab.on("console", lambda m: note("console " + m.type, m.text) if m.type in ("error", "assert") else None)
            tab.on("pageerror", lambda exc: note("uncaught exception", str(exc)))
            tab.on("requestfailed", lambda r: note("failed request", r.url[:120]))
            # A report must open offline: nothing may be fetched from the network.
            tab.on(
                "request",
                lambda r: (
                    note("network request", r.url) if not r.url.startswith(("file:", "data:", "about:")) else None
                ),
            )
            tab.on("dialog", lambda d: (note("dialog", d.message), d.dismiss()))
            for page in pages:
                current["page"] = page.name
                tab.goto(page.as_uri(), wait_until="load")
                images = tab.evaluate(
                    "() => Array.from(document.images).map(i => [i.alt || i.src.slice(0, 80),"
                    " i.complete && i.naturalWidth > 0])"
                )
                seen_images[page.name] = len(images)
                for label, ok in images:
                    if not ok:
                        note("broken image", label)
                if not tab.title():
                    note("title", "the page has no title")
                tab.screenshot(path=str(shots / f"{page.stem}.png"), full_page=True)
        finally:
            browser.close()

    print(f"screenshots of {len(pages)} pages in {shots}")
    assert not problems, "\n".join(problems)
    # The checks looked at something: the index draws charts, the reports draw plots.
    assert seen_images["index.html"] >= 3
    assert sum(seen_images.values()) >= seen_images["index.html"] + 10
    assert all((shots / f"{p.stem}.png").stat().st_size > 10_000 for p in pages)
