"""The app's Continue tab (app/tabs/continuation.py, app/lms.py): each codec's token LM carries
on a clip. Tiny random codecs (tests/app_assets.py) with tiny random LMs (tests/tiny_models.py)
whose tokenizer records name them: lengths, the boundary on both figures, the zip, named
errors, a codec without an LM, a refused LM at start-up, the `--lm` flag, the request gate,
gradio_client, the README's example and a headless-browser run."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)  # Gradio's own use of pandas

import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.cli import build_parser, config_from_args, create_app, main, serve  # noqa: E402
from app.errors import user_errors  # noqa: E402
from app.state import Studio  # noqa: E402
from app.tabs.continuation import PARAMS, continue_all  # noqa: E402
from app.ui import build_demo  # noqa: E402
from codec.models.registry import load_codec  # noqa: E402
from tests.app_assets import AppAssets, free_port, readme_python_block  # noqa: E402
from tests.tiny_models import save_tiny_lm, tiny_alm  # noqa: E402

SR = 24000
ALM_WINDOW = 4  # the tiny ALMTokenizer at w = 4: 18.75 token frames per second
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def lms(assets: AppAssets) -> dict[str, Any]:
    """Tiny LMs for the app's two codecs in one LM folder, and one made for another codec."""
    alm, enc = load_codec(assets.alm), load_codec(assets.encodec)
    enc.apply_setting(1.5)  # the app starts every EnCodec at its lowest bandwidth
    folder = assets.root / "lms"
    other = load_codec(tiny_alm(seed=1).save_pretrained(assets.root / "alm_other"))
    return {
        "dir": folder,
        "almtokenizer": save_tiny_lm(alm, ALM_WINDOW, folder / "lm_almtokenizer_tiny"),
        "encodec": save_tiny_lm(enc, None, folder / "lm_encodec_tiny"),
        "alm_only": save_tiny_lm(alm, ALM_WINDOW, assets.root / "lms_alm" / "lm_almtokenizer_t"),
        "other": save_tiny_lm(other, ALM_WINDOW, assets.root / "lm_other"),
        "other_hash": other.checkpoint_hash,
        "alm_hash": alm.checkpoint_hash,
    }


@pytest.fixture(scope="module")
def server(assets: AppAssets, lms):
    """(studio, demo, url) of a running app whose codecs both have a default LM."""
    studio, demo = create_app(assets.config(port=free_port(), lm_dir=lms["dir"], warmup=False))
    url = serve(studio, demo, block=False)
    yield studio, demo, url
    demo.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[2], verbose=False, download_files=str(server[0].out_dir / "client"))


def wav_len(path: str) -> int:
    return sf.info(path).frames


def layout(plot) -> dict:
    """The plotly layout of a gr.Plot value (PlotData, or gradio_client's dict)."""
    text = plot.plot if hasattr(plot, "plot") else plot["plot"]
    return json.loads(text)["layout"]


def boundary_x(plot) -> float:
    lay = layout(plot)
    (line,) = lay["shapes"]
    assert line["type"] == "line" and line["x0"] == line["x1"] and line["yref"] == "paper"
    texts = [a["text"].strip() for a in lay["annotations"]]
    assert texts == ["prompt", "continuation"]
    return float(line["x0"])


# --- the handler -----------------------------------------------------------------------------
def test_each_codec_continues_with_the_boundary_marked(server, assets) -> None:
    studio = server[0]
    assert list(studio.lms.pairs) == ["almtokenizer", "encodec"] and not studio.lms.missing
    out = continue_all(studio, str(assets.clip), 0.5, 1.0, 1.0, 8, 0)
    assert len(out) == 4 * 2 + 2
    zpath, caption = out[-2:]
    assert "clip.wav" in caption and "dashed line" in caption
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(zf.namelist())
    assert names == ["almtokenizer_w4/clip_continued.wav", "encodec_1.5kbps/clip_continued.wav"]
    for k, (key, rate) in enumerate((("almtokenizer", 75 / ALM_WINDOW), ("encodec", 75.0))):
        audio, info, spec, tokens = out[4 * k : 4 * k + 4]
        spf = SR / rate
        p, g = int(np.floor(0.5 * rate + 1e-6)), int(np.ceil(1.0 * rate - 1e-6))
        assert wav_len(audio) == round((p + g) * spf)  # prompt + generated, whole frames
        assert abs(wav_len(audio) - 1.5 * SR) <= spf
        assert f"({p} frames)" in info and f"({g} frames)" in info and "seed 0" in info
        assert boundary_x(spec) == pytest.approx(round(p * spf) / SR, abs=1e-4)
        assert boundary_x(tokens) == pytest.approx(p / rate, abs=1e-4)
        z = json.loads(tokens.plot)["data"][0]
        n_q = 3 if key == "almtokenizer" else 2
        assert z["type"] == "heatmap" and len(z["y"]) == n_q
        data = sf.read(audio)[0]
        with zipfile.ZipFile(zpath) as zf:
            member = next(n for n in zf.namelist() if n.startswith(key))
            assert len(zf.read(member)) > 2 * len(data)  # the zip holds this wav (16-bit PCM)
        assert (
            Path(audio).name == "clip_continued.wav" and Path(zpath).parent in Path(audio).parents
        )
    again = continue_all(studio, str(assets.clip), 0.5, 1.0, 1.0, 8, 0)  # seeded: same audio
    assert np.array_equal(sf.read(again[0])[0], sf.read(out[0])[0])


@pytest.fixture(scope="module")
def silent_clip(assets: AppAssets) -> Path:
    path = assets.root / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    return path


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"seconds": 1000.0}, r"seconds (to generate) must be in (0, 2.5]"),
        ({"seconds": 0.0}, "seconds (to generate) must be in"),
        ({"temperature": 0.0}, "temperature must be in (0, 10]"),
        ({"temperature": 50.0}, "temperature must be in (0, 10]"),
        ({"top_k": 0}, "ALMTokenizer: top_k must be an int in [1, 64]"),
        ({"top_k": 100000}, "top_k must be an int in [1, 64] (the codebook size)"),
        ({"seed": -3}, "seed must be an int >= 0"),
        ({"prompt_seconds": 0.03}, "ALMTokenizer: the prompt (0.03 s) is shorter than one token"),
        ({"prompt_seconds": 2.0}, "longer than the clip (1.200 s)"),
        ({"audio": "silent"}, "is silent"),
        ({"audio": "text"}, "is not an audio file"),
        ({"audio": "empty"}, "is empty"),
        ({"audio": None}, "No clip"),
    ],
)
def test_bad_inputs_raise_gr_error_naming_the_problem(server, assets, silent_clip, change, needle):
    files = {"silent": str(silent_clip), "text": str(assets.text_file), "empty": str(assets.silent)}
    args = {"audio": str(assets.clip), "prompt_seconds": 0.5, "seconds": 1.0,
            "temperature": 1.0, "top_k": 8, "seed": 0, **change}  # fmt: skip
    args["audio"] = files.get(args["audio"], args["audio"])
    with pytest.raises(gr.Error) as exc:
        user_errors(continue_all)(server[0], *(args[n] for n in PARAMS))
    assert needle in exc.value.message


def test_a_codec_without_an_lm_says_so(assets, lms) -> None:
    """Only ALMTokenizer has an LM: EnCodec's place holds one line saying so and how to give
    one; the handler returns ALMTokenizer's column only."""
    studio = Studio.load(assets.config(lm_dir=lms["alm_only"].parent, warmup=False))
    assert list(studio.lms.pairs) == ["almtokenizer"]
    line = studio.lms.missing["encodec"]
    assert line.startswith("EnCodec has no token LM") and "lm_encodec_*" in line
    assert "--lm encodec=PATH" in line and "docs/lm.md" in line
    props = {c["props"].get("elem_id"): c["props"] for c in build_demo(studio).config["components"]}
    assert line in props["continue_encodec_no_lm"]["value"]
    assert "continue_encodec_audio" not in props and "continue_almtokenizer_audio" in props
    assert "no tokens" in props["continue_no_tokens"]["value"]  # Opus, Codec2 left out
    out = continue_all(studio, str(assets.clip), 0.5, 0.5, 1.0, 8, 0)
    assert len(out) == 4 + 2 and wav_len(out[0]) > 0
    bare = Studio.load(assets.config(lm_dir=assets.root / "no_lms_here", warmup=False))
    assert continue_all(bare, str(assets.clip), 0.5, 0.5, 1.0, 8, 0)[0] is None
    assert (
        "No codec of the line-up has a token LM"
        in continue_all(bare, str(assets.clip), 0.5, 0.5, 1.0, 8, 0)[1]
    )


def test_an_lm_of_another_codec_is_refused_at_startup(assets, lms) -> None:
    """`--lm almtokenizer=<an LM of another checkpoint>`: a banner naming the codec and both
    hashes, and the app starts without it (EnCodec keeps its default LM)."""
    cfg = assets.config(lm_dir=lms["dir"], warmup=False,
                        lms=(("almtokenizer", lms["other"]), ("kazoo", lms["other"])))  # fmt: skip
    studio = Studio.load(cfg)
    assert list(studio.lms.pairs) == ["encodec"]
    text = " ".join(studio.notices)
    assert "refused for ALMTokenizer" in text
    assert f"checkpoint hash {lms['alm_hash']} vs {lms['other_hash']}" in text
    assert "no codec 'kazoo' in the line-up" in text
    assert "was refused at start-up" in studio.lms.missing["almtokenizer"]
    ok = Studio.load(assets.config(lm_dir=assets.root / "none", warmup=False,
                                   lms=(("almtokenizer", lms["alm_only"]),)))  # fmt: skip
    assert ok.lms.pairs["almtokenizer"].path == lms["alm_only"]


def test_lm_flag(assets, lms, capsys) -> None:
    parser = build_parser()
    argv = ["--dataset-root", str(assets.dataset), "--lm", f"almtokenizer={lms['almtokenizer']}",
            "--lm", f"encodec={lms['encodec']}"]  # fmt: skip
    cfg = config_from_args(parser.parse_args(argv), parser)
    assert cfg.lms == (("almtokenizer", lms["almtokenizer"]), ("encodec", lms["encodec"]))
    assert config_from_args(parser.parse_args([]), parser).lm_dir.name == "checkpoints"
    for bad, needle in ((["--lm", "almtokenizer"], "expected CODEC=CHECKPOINT"),
                        (["--lm", "encodec=/nonexistent/lm"], "does not exist")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2 and needle in capsys.readouterr().err


# --- through the server ------------------------------------------------------------------------
def test_gradio_client_continue_and_its_parameter_names(client, assets) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/continue"]["parameters"]] == list(PARAMS)
    out = client.predict(audio=handle_file(str(assets.clip)), prompt_seconds=0.5, seconds=1.0,
                         temperature=1.0, top_k=8, seed=1, api_name="/continue")  # fmt: skip
    assert len(out) == 10 and zipfile.is_zipfile(out[-2])
    assert boundary_x(out[2]) == pytest.approx(round(9 * SR / 18.75) / SR, abs=1e-4)
    assert abs(wav_len(out[0]) - 1.5 * SR) <= SR / 18.75 and "seed 1" in out[1]
    with pytest.raises(AppError, match=r"temperature must be in \(0, 10\]"):
        client.predict(handle_file(str(assets.clip)), 0.5, 1.0, 0.0, 8, 0, api_name="/continue")


def test_continue_waits_in_the_request_gate(server, client, assets) -> None:
    """With every slot taken and no room in line, /continue is refused at once, saying how
    many requests are ahead (the gate every model event goes through)."""
    gate = server[0].gate
    saved = gate.running, gate.max_waiting
    gate.running, gate.max_waiting = gate.slots, 0
    try:
        with pytest.raises(AppError, match=f"busy: {gate.slots} requests are ahead of yours"):
            client.predict(handle_file(str(assets.clip)), 0.5, 1.0, 1.0, 8, 0,
                           api_name="/continue")  # fmt: skip
    finally:
        gate.running, gate.max_waiting = saved


def test_example_picker(server, client) -> None:
    studio = server[0]
    label = studio.examples()[0].label
    path = client.predict(label, api_name="/continue_example")
    assert wav_len(path) == sf.info(str(studio.sound(label).path)).frames


def test_readme_continue_example_runs(server, assets) -> None:
    """Run the README's /continue example as written, against the test server and its clip."""
    code = readme_python_block("<!-- gradio_client /continue example")
    assert 'Client("http://127.0.0.1:7860/")' in code and 'api_name="/continue"' in code
    code = code.replace("http://127.0.0.1:7860/", server[2])
    code = code.replace("data/demo/sound_files/cello_demo/akg/0000.wav", str(assets.clip))
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert len(ns["continued"]) == 2  # both codecs have an LM here
    assert all(abs(wav_len(p) - 3.0 * SR) <= SR / 18.75 for p in ns["continued"])
    assert zipfile.is_zipfile(ns["cont_zip"]) and "clip.wav" in ns["cont_caption"]


# --- headless browser ----------------------------------------------------------------------------
@pytest.mark.browser
def test_browser_continue_tab(server, assets: AppAssets, tmp_path: Path) -> None:
    """Open the page and the Continue tab, upload a clip, press Continue: a player per codec
    (with its wav's download link), the boundary drawn on the spectrogram, a zip to download."""
    if not Path(CHROMIUM).exists():  # a failure, not a skip: the feature is part of the suite
        pytest.fail("Debian's chromium is not installed: `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.goto(server[2], wait_until="domcontentloaded")
            page.get_by_role("tab", name="Continue").click()
            page.wait_for_selector("#continue_audio input[type=file]", state="attached")
            page.set_input_files("#continue_audio input[type=file]", str(assets.clip))
            page.wait_for_selector("#continue_audio audio, #continue_audio .waveform-container",
                                   state="attached", timeout=30_000)  # fmt: skip
            page.locator("#continue_prompt_seconds input").fill("0.5")
            page.locator("#continue_seconds input").fill("1")
            page.locator("#continue_btn").click()
            for key in ("almtokenizer", "encodec"):
                page.wait_for_selector(f"#continue_{key}_audio a[download][href*='.wav']",
                                       state="attached", timeout=120_000)  # fmt: skip
                page.wait_for_selector(f"#continue_{key}_spec .js-plotly-plot", timeout=30_000)
            page.wait_for_selector("#continue_zip a[href*='.zip']", state="attached",
                                   timeout=30_000)  # fmt: skip
            shapes = page.evaluate(
                "() => document.querySelector('#continue_almtokenizer_spec .js-plotly-plot')"
                ".layout.shapes.length"
            )
            assert shapes == 1
            assert "(9 frames)" in page.locator("#continue_almtokenizer_info").inner_text()
        finally:
            ctx.close()
