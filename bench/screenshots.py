"""Screenshots of every tab into docs/screenshots/<tab>.png (Playwright + Debian's chromium).

    python bench/screenshots.py                       # bundled checkpoints + data/demo
    python bench/screenshots.py --alm-checkpoint DIR --out docs/screenshots

Starts the app in-process on a free port (same flags as `python -m app`), then in headless
chromium: Reconstruct (a bundled speech clip uploaded), Latent map (the default UMAP map),
Traversal (the default bass A3 -> clarinet A6 glide) and Timbre transfer (the speech clip toward
cello). Re-run it after training so the pictures show the trained checkpoints; when the bundled
checkpoints are missing the page (and so every picture) carries the random-init banner.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import build_parser, config_from_args, create_app, serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TABS = ("reconstruct", "latent_map", "traversal", "timbre")
TIMEOUT_MS = 180_000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_text(page, elem_id: str, needle: str) -> None:
    page.wait_for_function(
        "([id, s]) => { const e = document.getElementById(id);"
        " return e && e.innerText.includes(s); }",
        arg=[elem_id, needle],
        timeout=TIMEOUT_MS,
    )


def _wait_plots(page, *elem_ids: str) -> None:
    for eid in elem_ids:
        page.wait_for_selector(f"#{eid} .js-plotly-plot .main-svg", timeout=TIMEOUT_MS)
    page.wait_for_timeout(800)  # let plotly finish drawing


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(500)


def take(url: str, clip: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#input_audio input[type=file]", state="attached")

            page.set_input_files("#input_audio input[type=file]", str(clip))
            _wait_text(page, "almtokenizer_info", "tokens/s")
            _wait_text(page, "encodec_info", "tokens/s")
            _wait_plots(page, "original_spec", "almtokenizer_spec", "encodec_spec")
            shots.append(_shot(page, out, "reconstruct"))

            _open_tab(page, "Latent map")
            _wait_plots(page, "map_plot")
            shots.append(_shot(page, out, "latent_map"))

            _open_tab(page, "Traversal")
            page.click("#traverse_btn")
            page.wait_for_selector(
                "#trav_encodec a[download]", state="attached", timeout=TIMEOUT_MS
            )
            page.wait_for_timeout(800)
            shots.append(_shot(page, out, "traversal"))

            _open_tab(page, "Timbre transfer")
            page.set_input_files("#timbre_audio input[type=file]", str(clip))
            page.wait_for_timeout(500)
            page.click("#transfer_btn")
            page.wait_for_selector(
                "#timbre_encodec_after a[download]", state="attached", timeout=TIMEOUT_MS
            )
            page.wait_for_timeout(800)
            shots.append(_shot(page, out, "timbre"))
        finally:
            ctx.close()
    return shots


def _shot(page, out: Path, tab: str) -> Path:
    path = out / f"{tab}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.description = "Screenshot every tab of the app (accepts the app's flags)."
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    if "--port" not in (argv if argv is not None else sys.argv[1:]):
        args.port = _free_port()
    cfg = config_from_args(args, parser)
    logging.basicConfig(level=logging.WARNING)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    studio, demo = create_app(cfg)
    url = serve(studio, demo, block=False)
    print(f"app answers in {time.perf_counter() - t0:.1f} s at {url}")
    studio.warmup_status.wait()  # the pictures show the warmed-up app (map drawn at once)
    print(f"warm-up done after {time.perf_counter() - t0:.1f} s")
    for notice in studio.notices:
        print(f"note: {notice}")
    speech = next((s for s in studio.examples() if s.is_speech), studio.examples()[0])
    try:
        take(url, speech.path, args.out)
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
