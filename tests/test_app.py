"""The Gradio app end to end: started on a free port with small random-init checkpoints and a
miniature Good-sounds, then driven through gradio_client (every tab, every api_name, errors).

The last test drives the page in headless chromium (Playwright, Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)  # Gradio's own use of pandas

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.cli import build_parser, config_from_args, create_app, main, serve  # noqa: E402
from app.config import AppConfig  # noqa: E402
from app.errors import user_message  # noqa: E402
from app.state import Studio  # noqa: E402
from app.tabs import field_measures  # noqa: E402
from codec.audio import AudioError  # noqa: E402
from tests.app_assets import AppAssets, free_port, readme_python_block  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
API_NAMES = {
    "reconstruct", "load_example", "set_window", "set_bandwidth", "latent_map", "play_sound",
    "traverse", "transfer", "timbre_notes", "timbre_source", "pick_point", "show_map",
    "warmup_status", "reconstruct_references", "field_measures",
}  # fmt: skip
CLIP_SAMPLES = int(round(1.2 * 24000))  # the 1.2 s 44.1 kHz stereo clip, at 24 kHz


@pytest.fixture(scope="module")
def server(assets: AppAssets):
    """(studio, demo, url) of a running app; closed after the module."""
    studio, demo = create_app(assets.config(port=free_port()))
    url = serve(studio, demo, block=False)
    # the page answers at once; tests that count cache misses need the background warm-up done
    assert studio.warmup_status.wait(600), studio.warmup_status.markdown()
    assert studio.warmup_status.state == "done", studio.warmup_status.markdown()
    yield studio, demo, url
    demo.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[2], verbose=False, download_files=str(server[0].out_dir / "client"))


def arr(value) -> np.ndarray:
    """A plotly array: a list, or plotly's typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return a.reshape([int(n) for n in str(shape).split(",")]) if shape else a
    return np.asarray(value)


def wav_len(path: str) -> int:
    return sf.info(path).frames


def plot_json(value) -> dict:
    """The plotly figure behind a gr.Plot output as gradio_client returns it."""
    plot = value["plot"] if isinstance(value, dict) and "plot" in value else value
    return json.loads(plot) if isinstance(plot, str) else plot


# --- CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--port", "70000"], "--port must be from 1 to 65535"),
        (["--max-seconds", "0"], "--max-seconds must be > 0"),
        (["--concurrency", "0"], "--concurrency must be from 1 to 64"),
        (["--window", "11"], "--window must be from 2 to 10"),
        (["--alm-checkpoint", "/nonexistent/ckpt"], "does not exist"),
        (["--dataset-root", "/"], "not a Good-sounds root"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_message(argv, needle, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_python_m_app_bad_flag_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--port", "0"], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--port must be from 1 to 65535" in proc.stderr


def test_flags_reach_config(assets: AppAssets) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--alm-checkpoint", str(assets.alm), "--encodec-checkpoint", str(assets.encodec),
         "--dataset-root", str(assets.dataset), "--port", "7999", "--max-seconds", "12",
         "--concurrency", "3", "--host", "0.0.0.0", "--cache-dir", "none"]
    )  # fmt: skip
    cfg = config_from_args(args, parser)
    assert (cfg.port, cfg.max_seconds, cfg.concurrency, cfg.host) == (7999, 12.0, 3, "0.0.0.0")
    assert cfg.cache_dir is None and not cfg.share
    assert cfg.explicit == {"alm_checkpoint", "encodec_checkpoint"}
    defaults = config_from_args(parser.parse_args([]), parser)
    assert (defaults.host, defaults.port, defaults.share) == ("127.0.0.1", 7860, False)
    assert defaults.alm_checkpoint.name == "almtokenizer_demo"
    assert defaults.encodec_checkpoint.name == "encodec_vocos_demo"


def test_missing_default_checkpoints_fall_back_with_banner(assets: AppAssets, tmp_path) -> None:
    cfg = AppConfig(
        alm_checkpoint=tmp_path / "no_alm", encodec_checkpoint=tmp_path / "no_encodec",
        dataset_root=assets.dataset, cache_dir=None, warmup=False,
    )  # fmt: skip
    studio = Studio.load(cfg)
    text = " ".join(studio.notices)
    assert "no_alm not found" in text and "UNTRAINED" in text
    assert "no_encodec not found" in text or "EnCodec" in text
    from app.ui import banner_markdown

    assert "Warning" in banner_markdown(studio)


def test_missing_encodec_weights_fall_back_to_checkpoint(assets: AppAssets, tmp_path) -> None:
    cfg = assets.config(encodec_weights=tmp_path / "encodec_24khz-d7cc33bc.th", warmup=False)
    studio = Studio.load(cfg)
    assert any("weights file" in n and "not found" in n for n in studio.notices)
    assert [c.key for c in studio.codecs] == ["almtokenizer", "encodec"]
    assert studio.codec("encodec").codec.weights_source == f"checkpoint:{assets.encodec}"


def test_bandwidth_choices_follow_the_encodec_model(assets: AppAssets, tmp_path) -> None:
    """A small trained baseline (configs/encodec_demo.yaml) supports only 1.5 / 3 / 6 kbps."""
    from app.tabs.reconstruct import check_setting
    from app.ui import build_demo
    from codec.models.encodec import EnCodecCodec

    small = EnCodecCodec.from_config(
        {"n_filters": 4, "lstm": 0, "dimension": 32, "n_q": 8,
         "target_bandwidths": [1.5, 3.0, 6.0], "train_bandwidths": [1.5, 3.0, 6.0]}
    ).save_pretrained(tmp_path / "enc_small")  # fmt: skip
    studio = Studio.load(assets.config(encodec_checkpoint=small, warmup=False))
    encodec = studio.codec("encodec")
    assert encodec.setting.choices == (1.5, 3.0, 6.0)
    assert check_setting(encodec, "6") == 6.0
    with pytest.raises(ValueError, match="one of 1.5, 3, 6 kbps"):
        check_setting(encodec, 12.0)
    demo = build_demo(studio)
    radios = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "bandwidth"]
    assert [v for _, v in radios[0].choices] == [1.5, 3.0, 6.0]


def test_broken_explicit_checkpoint_exits_1(assets: AppAssets, tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    code = main(["--alm-checkpoint", str(bad), "--dataset-root", str(assets.dataset),
                 "--no-warmup", "--cache-dir", "none"])  # fmt: skip
    assert code == 1
    assert "config.json is not valid JSON" in capsys.readouterr().err


def test_error_messages_are_readable() -> None:
    msg = user_message(AudioError("/tmp/gradio/0a1b2c/notes.txt: not a readable audio file (x)"))
    assert msg.startswith("'notes.txt' is not an audio file") and "/tmp" not in msg
    msg = user_message(AudioError("/tmp/x/long.wav: 45.0 s is longer than the 30 s cap"))
    assert "too long" in msg and "--max-seconds" in msg
    assert "Internal error (KeyError)" in user_message(KeyError("x"))


# --- the running app ---------------------------------------------------------------------------
def test_every_event_has_an_api_name(server, client: Client) -> None:
    _, demo, _ = server
    names = [fn.api_name for fn in demo.fns.values()]
    assert all(names), f"events without api_name: {names}"
    assert set(names) >= API_NAMES
    assert not demo.share  # no public link unless --share
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {f"/{n}" for n in API_NAMES} <= set(endpoints)


def test_reconstruct_tab(server, client: Client, assets: AppAssets) -> None:
    studio = server[0]
    out = client.predict(handle_file(str(assets.clip)), 4, 1.5, api_name="/reconstruct")
    assert len(out) == 13
    orig_spec, orig_info, alm_audio, alm_info, alm_spec, alm_usage, alm_tl = out[:7]
    enc_audio, enc_info, enc_spec, enc_usage, enc_tl, table = out[7:]
    assert wav_len(alm_audio) == CLIP_SAMPLES and wav_len(enc_audio) == CLIP_SAMPLES
    assert "1.20 s" in orig_info
    alm = studio.codec("almtokenizer").codec  # frame_rate / w tokens/s x n_q x log2(K) bits
    rate, kbps = alm.frame_rate(4), alm.bitrate(4) / 1000
    assert rate == alm.config.base_args.frame_rate / 4 and alm.num_codebooks == 3
    assert f"{rate:.2f} tokens/s" in alm_info and f"{kbps:.3f} kbps" in alm_info
    assert "75.00 tokens/s" in enc_info and "1.500 kbps" in enc_info
    spec = plot_json(alm_spec)
    assert spec["data"][0]["type"] == "heatmap" and arr(spec["data"][0]["z"]).shape[0] == 80
    assert plot_json(orig_spec)["data"][0]["type"] == "heatmap"
    usage = plot_json(alm_usage)
    assert [d["type"] for d in usage["data"]] == ["bar", "bar"]
    assert len(arr(usage["data"][0]["x"])) == studio.codec("almtokenizer").codec.num_codebooks
    tl = plot_json(enc_tl)
    assert arr(tl["data"][0]["z"]).shape == (2, -(-CLIP_SAMPLES // 320))  # 2 codebooks
    rows = table["data"]
    assert [r[0] for r in rows] == ["ALMTokenizer", "EnCodec"]
    assert rows[0][1] == "w=4" and rows[1][1] == "1.5 kbps"
    assert all(np.isfinite(float(v)) for v in rows[0][4:])


def test_slider_move_recomputes_only_almtokenizer(server, client: Client, assets) -> None:
    studio = server[0]
    client.predict(handle_file(str(assets.clip)), 4, 1.5, api_name="/reconstruct")
    misses = studio.results.misses
    out = client.predict(handle_file(str(assets.clip)), 7, 1.5, api_name="/set_window")
    assert len(out) == 6  # ALMTokenizer column (5) + table
    assert studio.results.misses == misses + 1  # the ALMTokenizer column only
    assert "w=7" in out[1] and wav_len(out[0]) == CLIP_SAMPLES
    assert out[5]["data"][0][1] == "w=7" and out[5]["data"][1][1] == "1.5 kbps"
    out = client.predict(handle_file(str(assets.clip)), 7, 6.0, api_name="/set_bandwidth")
    assert "6 kbps" in out[1] and "6.000 kbps" in out[1]
    assert arr(plot_json(out[4])["data"][0]["z"]).shape[0] == 8  # 8 codebooks at 6 kbps
    assert studio.results.misses == misses + 2


def test_reference_codecs_beside_the_learned_ones(server, client: Client, assets) -> None:
    """Opus and Codec2 on the Reconstruct tab (behind one checkbox, off by default), with the
    bitrate measured from what they produced; the latent tabs say why they are left out."""
    studio, demo, _ = server
    assert [c.key for c in studio.codecs] == ["almtokenizer", "encodec"]
    assert [c.key for c in studio.references] == ["opus", "codec2"]
    clip = handle_file(str(assets.clip))
    out = client.predict(clip, True, 12.0, "700C", api_name="/reconstruct_references")
    opus_audio, opus_info, opus_spec, c2_audio, c2_info, c2_spec, table = out
    assert wav_len(opus_audio) == wav_len(c2_audio) == CLIP_SAMPLES
    assert "(12 kbps)" in opus_info and "measured" in opus_info and "(700C)" in c2_info
    assert plot_json(c2_spec)["data"][0]["type"] == "heatmap"
    rows = table["data"]
    assert [r[:2] for r in rows] == [["Opus (libopus)", "12 kbps"],
                                     ["Codec2 (8 kHz speech codec)", "700C"]]  # fmt: skip
    assert 6.0 < float(rows[0][2]) < 24.0 and float(rows[0][3]) == 12.0  # measured, nominal
    assert float(rows[1][3]) == 0.7
    misses = studio.results.misses
    off = client.predict(clip, False, 6.0, "3200", api_name="/reconstruct_references")
    assert studio.results.misses == misses and len(off) == 7  # unticked: nothing computed
    with pytest.raises(AppError, match="bitrate must be one of 6, 12"):
        client.predict(clip, True, 7.0, "700C", api_name="/reconstruct_references")
    props = [c["props"] for c in demo.config["components"]]
    notes = {p.get("elem_id"): p.get("value") for p in props}
    assert notes["show_references"] is False  # the checkbox, off: the section costs time
    for elem in ("map_no_latents", "traversal_no_latents", "timbre_no_latents"):
        assert "Opus (libopus), Codec2 (8 kHz speech codec) left out" in notes[elem]
        assert "no latents" in notes[elem]
    assert "Reference codecs" in notes["summary"]


def test_field_measures_score_what_each_player_plays(server, client: Client, assets) -> None:
    """Ticked, the field's measures score each player against the clip, under the clean
    original's row (each measure's ceiling); what applies follows the clip kind; the reference
    codecs join when their section is shown; unticked, nothing is computed."""
    studio = server[0]
    clip = handle_file(str(assets.clip))
    misses = studio.results.misses
    off = client.predict(
        clip, False, "note", 5, 1.5, False, 6.0, "700C", api_name="/field_measures"
    )
    assert studio.results.misses == misses and off is not None  # unticked: nothing computed
    table = client.predict(clip, True, "note", 5, 1.5, False, 6.0, "700C",
                           api_name="/field_measures")  # fmt: skip
    head, rows = table["headers"], table["data"]
    col = {h: head.index(h) for h in head}
    assert [r[0] for r in rows] == [field_measures.ORIGINAL, "ALMTokenizer", "EnCodec"]
    assert [r[1] for r in rows[1:]] == ["w=5", "1.5 kbps"]
    vis = col["ViSQOL (MOS-LQO)"]
    assert 4.5 < float(rows[0][vis]) <= 5.0  # identical audio: ViSQOL's ceiling (4.73)
    for r in rows[1:]:  # a score below the ceiling, or none with its reason (a silent output)
        assert 1.0 <= float(r[vis]) < float(rows[0][vis]) if r[vis] != "–" else "visqol:" in r[-1]
    assert any(r[vis] != "–" for r in rows[1:])
    f0 = col["F0 RMSE (cents)"]
    assert all(r[f0] != "–" or "f0_rmse_cents:" in r[-1] for r in rows)
    assert rows[0][col["pitch kept"]] == "yes"  # a note kept by itself
    assert all(r[col["pitch kept"]] in ("yes", "no", "–") for r in rows[1:])
    assert all(r[col["DNSMOS OVRL"]] == "–" for r in rows)
    assert "not speech" in rows[1][col["not scored"]]
    speech = client.predict(clip, True, "speech", 5, 1.5, True, 12.0, "3200",
                            api_name="/field_measures")["data"]  # fmt: skip
    assert [r[0] for r in speech][3:] == ["Opus (libopus)", "Codec2 (8 kHz speech codec)"]
    assert [r[1] for r in speech][3:] == ["12 kbps", "3200"]
    assert all(1.0 <= float(r[col["DNSMOS OVRL"]]) <= 5.0 for r in speech[:1] + speech[3:])
    assert all(r[col["DNSMOS OVRL"]] != "–" or "dnsmos" in r[-1] for r in speech)
    assert all(r[col["pitch kept"]] == "–" for r in speech)
    assert "not a note" in speech[1][col["not scored"]]
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(clip, True, "music", 5, 1.5, False, 6.0, "700C", api_name="/field_measures")


def test_load_example(server, client: Client) -> None:
    studio = server[0]
    label = studio.examples()[0].label
    assert label.startswith("speech_")
    out = client.predict(label, 5, 1.5, api_name="/load_example")
    assert len(out) == 14
    assert wav_len(out[0]) == wav_len(out[3]) == wav_len(out[8])
    assert label in out[2]  # the original's caption names the example


def test_latent_map_tab(server, client: Client, assets) -> None:
    studio = server[0]
    fig, scores, sound_update, caption = client.predict(
        "umap", "instrument", 4, handle_file(str(assets.clip)), api_name="/latent_map"
    )
    fig = plot_json(fig)
    names = {d.get("name") for d in fig["data"]}
    assert {"bass", "clarinet", "cello", "flute", "uploads"} <= names
    xaxes = {d.get("xaxis", "x") for d in fig["data"]}
    assert xaxes == {"x", "x2"}  # one panel per codec
    n_points = sum(len(arr(d["x"])) for d in fig["data"] if d.get("name") != "uploads")
    assert n_points == 2 * len(studio.items)
    assert "clip.wav" in caption
    rows = scores["data"]
    assert len(rows) == 6 and {r[0] for r in rows} == {"ALMTokenizer", "EnCodec"}
    fig2, *_ = client.predict("pca", "octave", 4, None, api_name="/latent_map")
    assert "uploads" not in {d.get("name") for d in plot_json(fig2)["data"]}
    label = studio.sounds[2].label
    audio, desc = client.predict(label, api_name="/play_sound")
    assert wav_len(audio) == sf.info(str(studio.sounds[2].path)).frames
    assert label in desc


def test_traversal_tab_steps_and_glide(server, client: Client, assets) -> None:
    alm, enc, zpath, caption = client.predict(
        ["bass A3", "clarinet A6"], None, "steps", 4, "spherical", 4, api_name="/traverse"
    )
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(zf.namelist())
    assert len(names) == 8 and all(n.endswith(".wav") for n in names)
    assert {n.split("/")[0] for n in names} == {"almtokenizer_w4", "encodec"}
    note = int(round(0.6 * 24000))
    assert wav_len(alm) == 4 * note + 3 * int(0.15 * 24000)  # 4 steps, gaps between
    assert "bass A3 -> clarinet A6" in caption
    alm, enc, zpath, _ = client.predict(
        ["bass A3", "upload 1", "cello"], [handle_file(str(assets.clip))], "glide", 8,
        "linear", 6, api_name="/traverse",
    )  # fmt: skip
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == ["almtokenizer_w6/glide.wav", "encodec/glide.wav"]
    assert wav_len(alm) == wav_len(enc) == 2 * CLIP_SAMPLES  # (K-1) x the longest waypoint


def test_timbre_tab(server, client: Client, assets) -> None:
    studio = server[0]
    out = client.predict(handle_file(str(assets.clip)), "cello", "A3", 1.0, 4, api_name="/transfer")
    *players, zpath, caption = out
    assert len(players) == 4 and all(wav_len(p) == CLIP_SAMPLES for p in players)
    with zipfile.ZipFile(zpath) as zf:
        assert len(zf.namelist()) == 4
    assert "cello A3" in caption
    notes = client.predict("flute", api_name="/timbre_notes")
    assert notes["choices"][0][0] == "(any)" if isinstance(notes, dict) else True
    speech = next(s for s in studio.sounds if s.is_speech)
    path = client.predict(speech.label, api_name="/timbre_source")
    assert wav_len(path) == sf.info(str(speech.path)).frames


@pytest.mark.parametrize(
    ("endpoint", "make_args", "needle"),
    [
        ("/reconstruct", lambda a: (handle_file(str(a.text_file)), 4, 1.5), "is not an audio file"),
        ("/reconstruct", lambda a: (handle_file(str(a.fake_wav)), 4, 1.5), "is not an audio file"),
        ("/reconstruct", lambda a: (handle_file(str(a.long_clip)), 4, 1.5), "too long"),
        ("/reconstruct", lambda a: (handle_file(str(a.silent)), 4, 1.5), "empty"),
        ("/reconstruct", lambda a: (None, 4, 1.5), "No clip"),
        # out-of-range sliders and unknown radio values are refused by Gradio itself
        ("/set_window", lambda a: (handle_file(str(a.clip)), 12, 1.5), "greater than maximum"),
        ("/set_bandwidth", lambda a: (handle_file(str(a.clip)), 4, 2.0),
         "bandwidth must be one of 1.5, 3, 6"),
        ("/latent_map", lambda a: ("umap", "instrument", 4, handle_file(str(a.text_file))),
         "is not an audio file"),
        ("/traverse", lambda a: (["kazoo A3", "bass A3"], None, "glide", 4, "linear", 4),
         "unknown instrument 'kazoo'"),
        ("/traverse", lambda a: (["bass A3"], None, "glide", 4, "linear", 4), "two or more"),
        ("/transfer", lambda a: (handle_file(str(a.text_file)), "cello", "", 1.0, 4),
         "is not an audio file"),
        ("/transfer", lambda a: (handle_file(str(a.clip)), "cello", "", 2.0, 4),
         "greater than maximum value 1.5"),
        ("/transfer", lambda a: (handle_file(str(a.clip)), "cello", "C2", 1.0, 4), "no sounds"),
    ],
)  # fmt: skip
def test_bad_inputs_give_readable_errors(client: Client, assets, endpoint, make_args, needle):
    with pytest.raises(AppError) as exc:
        client.predict(*make_args(assets), api_name=endpoint)
    assert needle in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_app_keeps_serving_after_errors(client: Client, assets) -> None:
    with pytest.raises(AppError):
        client.predict(handle_file(str(assets.text_file)), 4, 1.5, api_name="/reconstruct")
    out = client.predict(handle_file(str(assets.clip)), 3, 1.5, api_name="/set_window")
    assert wav_len(out[0]) == CLIP_SAMPLES


def _documented_values(param: dict, clip: str) -> list:
    """Values of the type `view_api()` documents for `param`: its default (or example) in
    each documented form; a `float | Literal['1.5', ...]` gets both a number and a text."""
    kind = param["python_type"]["type"]
    default = param.get("parameter_default") if param.get("parameter_has_default") else None
    if kind == "filepath":
        return [handle_file(clip)]
    if kind == "list[filepath]":
        return [[handle_file(clip)]]
    literals = re.findall(r"'([^']*)'", kind)
    if kind.startswith("float | Literal["):
        return [float(literals[0]), literals[-1]]
    if kind.startswith("Literal["):
        return [default if default is not None else literals[0]]
    if kind.startswith("list[Literal["):
        return [default if default is not None else literals[:2]]
    if kind in ("float", "int"):
        return [default if default is not None else param["example_input"]]
    if kind == "bool":
        return [default if default is not None else True]
    if kind == "str":
        return [default if default is not None else param["example_input"]]
    raise AssertionError(f"{param['parameter_name']}: undocumented type {kind!r} in this test")


def test_every_endpoint_accepts_its_documented_types(client: Client, assets) -> None:
    """Each named endpoint, called with values of the types `view_api()` shows (defaults or
    examples; both forms of a number-or-text setting), answers without a type error."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    point = json.dumps({"panel": 0, "row": 0})  # pick_point's str: a map click (CLICK_JS)
    called, traversal_zip = [], None
    for name, spec in endpoints.items():
        options = []
        for p in spec["parameters"]:
            values = _documented_values(p, str(assets.clip))
            if p["parameter_name"] == "point":
                values = [point]
            if name == "/traverse_judge":  # its filepath is the traversal's zip
                values = [handle_file(traversal_zip)]
            options.append(values)
        n = max((len(v) for v in options), default=1)
        for k in range(n):  # every documented form at least once
            args = [v[min(k, len(v) - 1)] for v in options]
            out = client.predict(*args, api_name=name)
            called.append(name)
            if name == "/traverse":
                traversal_zip = next(o for o in out if str(o).endswith(".zip"))
    assert {f"/{n}" for n in API_NAMES} <= set(called)
    assert called.count("/reconstruct") == 2  # bandwidth as 1.5 and as "6.0"


def test_a_full_line_is_answered_at_once_with_how_many_are_ahead(server, client, assets):
    """With every slot taken and the line at its bound, a request is refused at once with the
    count ahead; the page and the warm-up status still answer; then the app serves again."""
    import time
    import urllib.request

    studio, _, url = server
    gate = studio.gate
    saved = gate.running, gate.max_waiting
    gate.running, gate.max_waiting = gate.slots, 0  # as if `slots` requests were running
    try:
        t0 = time.perf_counter()
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(assets.clip)), 5, 1.5, api_name="/reconstruct")
        assert time.perf_counter() - t0 < 5
        assert f"busy: {gate.slots} requests are ahead of yours" in str(exc.value)
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        assert "Ready" in client.predict(api_name="/warmup_status")[0]
    finally:
        gate.running, gate.max_waiting = saved
    out = client.predict(handle_file(str(assets.clip)), 5, 1.5, api_name="/reconstruct")
    assert wav_len(out[2]) == CLIP_SAMPLES


# --- headless browser --------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _text_has(page, elem_id: str, needle: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        "([id, s]) => { const e = document.getElementById(id);"
        " return e && e.innerText.includes(s); }",
        arg=[elem_id, needle],
        timeout=timeout_ms,
    )


@pytest.mark.browser
def test_browser_upload_slider_screenshot(server, assets: AppAssets, tmp_path: Path) -> None:
    """Load the page, upload a clip, wait for both players, move the window slider, wait for
    the ALMTokenizer column to follow, and check the screenshot is not blank."""
    if not Path(CHROMIUM).exists():  # a failure, not a skip: the feature is part of the suite
        pytest.fail("Debian's chromium is not installed: `make browser` (apt-get install chromium)")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    url = server[2]
    shot = tmp_path / "reconstruct.png"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#input_audio input[type=file]", state="attached")
            page.set_input_files("#input_audio input[type=file]", str(assets.clip))
            _text_has(page, "almtokenizer_info", "(w=4)")
            _text_has(page, "encodec_info", "(1.5 kbps)")
            for player in ("#almtokenizer_audio", "#encodec_audio"):
                page.wait_for_selector(f"{player} a[download][href*='.wav']", state="attached")
            # drag the slider's thumb to about w = 8 with the mouse (pointerup = "release")
            track = page.locator("#window_slider input[type=range]")
            box = track.bounding_box()
            assert box is not None
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 2 / 8, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 6 / 8, y, steps=5)
            page.mouse.up()
            w = int(page.locator("#window_slider input[type=number]").input_value())
            assert 6 <= w <= 10, w
            _text_has(page, "almtokenizer_info", f"(w={w})")
            href = page.locator("#almtokenizer_audio a[download]").get_attribute("href")
            assert href and f"almtokenizer_w{w}" in href
            assert "(1.5 kbps)" in page.locator("#encodec_info").inner_text()
            page.wait_for_selector("#almtokenizer_spec .js-plotly-plot", timeout=30_000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            ctx.close()
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape[0] > 500 and img.shape[1] > 800
    assert img.std() > 10, "screenshot looks blank"
    assert (img < 200).mean() > 0.02, "screenshot has almost no content"


def test_timbre_tab_equals_analysis_timbre_transfer(server, assets) -> None:
    """The tab's cached composition gives exactly `analysis.timbre.timbre_transfer`'s audio."""
    import torch

    from analysis.timbre import timbre_transfer
    from app.clips import load_clip
    from app.tabs.timbre import transfer_one

    studio = server[0]
    clip = load_clip(str(assets.clip), 10)
    for entry in studio.codecs:
        for alpha in (0.0, 0.7):
            before, after, _ = transfer_one(studio, entry, clip, "clarinet A6", alpha, 5)
            ref = timbre_transfer(entry.codec, clip.wav, "clarinet A6", studio.items, alpha, 5,
                                  cache_dir=studio.config.cache_dir)  # fmt: skip
            torch.testing.assert_close(before, ref.before, rtol=0, atol=1e-4)
            torch.testing.assert_close(after, ref.after, rtol=0, atol=1e-4)


def test_readme_gradio_client_example_runs(server, assets: AppAssets) -> None:
    """Run the README's example as written, against the test server and its clip."""
    studio, _, url = server
    code = readme_python_block("<!-- gradio_client example")
    assert 'Client("http://127.0.0.1:7860/")' in code
    code = code.replace("http://127.0.0.1:7860/", url)
    code = code.replace("data/demo/sound_files/speech_demo/akg/0001.wav", str(assets.clip))
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert [r[0] for r in ns["table"]] == ["ALMTokenizer", "EnCodec"]
    assert ns["table"][0][1] == "w=6" and ns["table"][1][1] == "1.5 kbps"
    assert len(ns["players"]) == 4 and all(wav_len(p) == CLIP_SAMPLES for p in ns["players"])
    assert "cello" in ns["caption"]
    assert len(ns["glides"]) == 2 and zipfile.is_zipfile(ns["trav_zip"])
    assert "bass A3 -> clarinet A6" in ns["trav_caption"]
    assert [r[0] for r in ns["measures"]] == [field_measures.ORIGINAL, "ALMTokenizer", "EnCodec"]


def test_api_parameters_have_descriptive_names(client: Client) -> None:
    """No one-letter parameter names in the scripted API."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = {
        ep: [p["parameter_name"] for p in info["parameters"]] for ep, info in endpoints.items()
    }
    assert names["/reconstruct"] == ["audio", "window", "bandwidth"]
    assert names["/reconstruct_references"] == [
        "audio", "show_references", "opus_kbps", "codec2_kbps",
    ]  # fmt: skip
    assert names["/field_measures"] == [
        "audio", "show_field_measures", "clip_kind", "window", "bandwidth", "show_references",
        "opus_kbps", "codec2_kbps",
    ]  # fmt: skip
    assert names["/transfer"] == ["audio", "target_instrument", "target_note", "strength", "window"]
    assert names["/traverse"] == [
        "waypoints", "uploads", "rendering", "steps", "interpolation", "window",
    ]  # fmt: skip
    assert names["/latent_map"] == ["method", "color_by", "window", "upload"]
    short = {ep: [n for n in ns if len(n) < 4 and n != "rendering"] for ep, ns in names.items()}
    assert not any(short.values()), short


@pytest.mark.browser
def test_browser_reference_codecs_behind_their_checkbox(server, assets, tmp_path: Path) -> None:
    """The reference section is hidden until its checkbox is ticked; ticked, it fills for the
    uploaded clip; a bitrate radio recomputes its column; unticked, it hides again."""
    if not Path(CHROMIUM).exists():
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
            page.wait_for_selector("#input_audio input[type=file]", state="attached")
            page.set_input_files("#input_audio input[type=file]", str(assets.clip))
            _text_has(page, "encodec_info", "(1.5 kbps)")
            assert not page.locator("#references").is_visible()
            page.locator("#show_references input[type=checkbox]").check()
            _text_has(page, "opus_info", "(6 kbps)")
            _text_has(page, "codec2_info", "measured")
            for player in ("#opus_audio", "#codec2_audio"):
                page.wait_for_selector(f"{player} a[download][href*='.wav']", state="attached")
            page.locator("#opus_kbps label", has_text="12").click()
            _text_has(page, "opus_info", "(12 kbps)")
            page.locator("#show_references input[type=checkbox]").uncheck()
            page.wait_for_selector("#references", state="hidden", timeout=30_000)
        finally:
            ctx.close()


@pytest.mark.browser
def test_browser_click_map_point_plays_it(server, assets: AppAssets, tmp_path: Path) -> None:
    """Open the Latent map tab (the default map is drawn on the first visit), click a dataset
    point in every codec's panel: the player receives that sound's audio and the caption names
    it; then place an upload: it is highlighted, and clicking it plays the upload."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    studio, _, url = server
    n_panels = len(studio.codecs)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1100},
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Latent map").click()
            page.wait_for_function(
                "n => { const g = document.querySelector('#map_plot .js-plotly-plot');"
                " return g && g.data && new Set(g.data.map(t => t.xaxis || 'x')).size === n; }",
                arg=n_panels, timeout=120_000,
            )  # fmt: skip
            for panel in range(n_panels):
                axis = "x" if panel == 0 else f"x{panel + 1}"
                # a dataset point of this panel: its screen position and its row (customdata)
                target = page.evaluate(
                    """axis => {
                      const gd = document.querySelector('#map_plot .js-plotly-plot');
                      const k = gd._fullData.findIndex(t => (t.xaxis || 'x') === axis
                                                       && t.customdata && t.name !== 'uploads');
                      const t = gd._fullData[k], xa = gd._fullLayout[axis === 'x' ? 'xaxis'
                                : 'xaxis' + axis.slice(1)];
                      const ya = gd._fullLayout[xa.anchor === 'y' ? 'yaxis'
                                : 'yaxis' + xa.anchor.slice(1)];
                      // the map may start below the fold (notes above it): a click outside
                      // the viewport reaches nothing
                      gd.scrollIntoView({block: 'center'});
                      const box = gd.getBoundingClientRect();
                      const j = t.customdata.length - 1;
                      return {x: box.left + xa._offset + xa.l2p(t.x[j]),
                              y: box.top + ya._offset + ya.l2p(t.y[j]),
                              row: t.customdata[j][t.customdata[j].length - 1],
                              file: t.customdata[j][3]};
                    }""",
                    axis,
                )
                sound = studio.sounds[target["row"]]
                assert sound.path.name == target["file"]
                page.mouse.move(target["x"], target["y"])
                page.mouse.click(target["x"], target["y"])
                codec_label = studio.codecs[panel].label
                _text_has(page, "map_sound_info", f"{codec_label}'s map")
                _text_has(page, "map_sound_info", sound.label)
                href = page.locator("#map_player a[download]").get_attribute("href")
                assert href and href.endswith(sound.path.name), (href, sound.path)
            # an upload is placed on every panel as a highlighted star; clicking it plays it
            page.set_input_files("#map_upload input[type=file]", str(assets.clip))
            page.locator("#map_btn").click()
            page.wait_for_function(
                "() => { const g = document.querySelector('#map_plot .js-plotly-plot');"
                " return g && g.data.some(t => t.name === 'uploads'); }",
                timeout=120_000,
            )
            star = page.evaluate(
                """() => {
                  const gd = document.querySelector('#map_plot .js-plotly-plot');
                  const t = gd._fullData.find(t => t.name === 'uploads');
                  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                  gd.scrollIntoView({block: 'center'});
                  const box = gd.getBoundingClientRect();
                  return {x: box.left + xa._offset + xa.l2p(t.x[0]),
                          y: box.top + ya._offset + ya.l2p(t.y[0]),
                          color: t.marker.color, size: t.marker.size};
                }"""
            )
            assert star["color"] == "#e11d48" and star["size"] >= 20  # highlighted
            page.mouse.move(star["x"], star["y"])
            page.mouse.click(star["x"], star["y"])
            _text_has(page, "map_sound_info", "upload clip.wav")
            href = page.locator("#map_player a[download]").get_attribute("href")
            assert href and href.endswith("clip.wav"), href
        finally:
            ctx.close()


def test_page_modules_do_not_load_scikit_learn() -> None:
    """The page answers before scikit-learn (maps, probes) is imported; the map tab's method
    list is analysis.projection's."""
    code = "import sys, app.ui; sys.exit('sklearn' in sys.modules or 'umap' in sys.modules)"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0
    from analysis.projection import METHODS
    from app.tabs.latent_map import METHODS as APP_METHODS

    assert APP_METHODS == METHODS


def test_lru_computes_a_key_once_under_concurrency() -> None:
    """The warm-up and a request asking for the same latents at once compute them once."""
    import threading
    import time

    from app.state import LRU

    lru, calls = LRU(4), []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    out: list[int] = []
    threads = [
        threading.Thread(target=lambda: out.append(lru.get_or_compute("k", compute)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [42] * 4 and len(calls) == 1 and (lru.misses, lru.hits) == (1, 3)


def test_page_answers_while_the_warmup_runs(assets: AppAssets, monkeypatch) -> None:
    """The server answers (page and API) before the warm-up finished; the status line shows
    its progress and then 'Ready'; a request made meanwhile is computed on demand."""
    import threading
    import urllib.request

    release = threading.Event()
    real = Studio.warmup

    def slow_warmup(self):
        self.warmup_status.step = "dataset latents, ALMTokenizer"
        release.wait(120)
        return real(self)

    monkeypatch.setattr(Studio, "warmup", slow_warmup)
    studio, demo = create_app(assets.config(port=free_port(), cache_dir=None))
    url = serve(studio, demo, block=False)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200
        client = Client(url, verbose=False, download_files=str(studio.out_dir / "c"))
        status, _ = client.predict(api_name="/warmup_status")
        assert status.startswith("Warming up in the background")
        assert studio.warmup_status.state == "running"
        out = client.predict(handle_file(str(assets.clip)), 5, 1.5, api_name="/reconstruct")
        assert wav_len(out[2]) == CLIP_SAMPLES  # computed on demand
        release.set()
        assert studio.warmup_status.wait(600) and studio.warmup_status.state == "done"
        status, _ = client.predict(api_name="/warmup_status")
        assert status.startswith("Ready")
    finally:
        release.set()
        demo.close()


def test_page_shows_paths_inside_the_project_relative(tmp_path, monkeypatch) -> None:
    """The header names checkpoints and the dataset without the machine's folders above the
    working directory; paths elsewhere stay as they are."""
    from types import SimpleNamespace

    from app.state import shown_path, weights_source

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "checkpoints" / "almtokenizer_demo"
    inside.mkdir(parents=True)
    assert shown_path(inside) == str(Path("checkpoints") / "almtokenizer_demo")
    assert shown_path("/elsewhere/ckpt") == "/elsewhere/ckpt"
    entry = SimpleNamespace(source=f"checkpoint:{inside}")
    assert weights_source(entry) == "checkpoint:checkpoints/almtokenizer_demo"
    assert weights_source(SimpleNamespace(source="random-init (untrained)")) == (
        "random-init (untrained)"
    )
