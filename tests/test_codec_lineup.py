"""A list of codecs, not a pair: the setting each codec declares (`Codec.setting`), the backend
registry, the line-up the app and the CLIs load (ALMTokenizer, our EnCodec and the official
EnCodec when its file is present, plus `--codec NAME=PATH`), and three codecs side by side in
the app's tabs."""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from analysis.codec_ops import state_dict_hash, uses_window  # noqa: E402
from analysis.models import CodecSpec, default_specs, load_codec_list, unique_labels  # noqa: E402
from app.state import Studio  # noqa: E402
from codec.models.base import CodecSetting  # noqa: E402
from codec.models.encodec import OFFICIAL_NAME, EnCodecCodec, EnCodecConfig  # noqa: E402
from codec.models.registry import BACKENDS, get_backend  # noqa: E402
from tests.app_assets import AppAssets  # noqa: E402

SMALL_ENCODEC = {
    "n_filters": 4, "lstm": 0, "dimension": 32, "n_q": 8,
    "target_bandwidths": [1.5, 3.0, 6.0], "train_bandwidths": [1.5, 3.0, 6.0],
}  # fmt: skip


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random model of the official architecture saved like the official file, in a torch
    hub cache folder ($TORCH_HOME/hub/checkpoints)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints" / OFFICIAL_NAME
    path.parent.mkdir(parents=True)
    torch.save(EnCodecCodec(EnCodecConfig()).state_dict(), path)
    return path


@pytest.fixture
def hub(official: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The official file visible in the torch hub cache (its hash accepted as official)."""
    import codec.models.encodec as ce

    digest = hashlib.sha256(official.read_bytes()).hexdigest()
    monkeypatch.setattr(ce, "OFFICIAL_SHA256_PREFIX", digest[:8])
    monkeypatch.setenv("TORCH_HOME", str(official.parents[2]))
    return official


# --- the setting a codec declares ---------------------------------------------------------------
def test_codec_setting_checks_labels_and_windows() -> None:
    win = CodecSetting("window", tuple(float(w) for w in range(2, 11)), 6)
    assert win.check("4") == 4 and isinstance(win.check(4.0), int)
    assert (win.label(4), win.window(4)) == ("w=4", 4)
    with pytest.raises(ValueError, match="window must be one of 2, 3"):
        win.check(11)
    bw = CodecSetting("bandwidth", (1.5, 3.0), 1.5)
    assert bw.check("3 kbps") == 3.0 and bw.label(3.0) == "3 kbps" and bw.window(3.0) is None
    with pytest.raises(ValueError, match="one of 1.5, 3 kbps"):
        bw.check(6)
    assert CodecSetting("none").check("anything") is None


def test_backends_declare_their_setting(assets: AppAssets) -> None:
    """ALMTokenizer offers the window (derived on the interface from its frame rate), EnCodec
    its configured bandwidths; nothing is asked by the codec's name."""
    alm = get_backend("almtokenizer").load(assets.alm)
    enc = get_backend("encodec").load(assets.encodec)
    assert alm.setting().kind == "window" and alm.setting().choices[0] == 2
    assert uses_window(alm) and not uses_window(enc)
    assert enc.setting() == CodecSetting("bandwidth", (1.5, 3.0, 6.0, 12.0, 24.0), 1.5)
    assert "apply_setting" in vars(EnCodecCodec) and "setting" in vars(EnCodecCodec)


def test_use_setting_applies_restores_and_serialises(assets: AppAssets) -> None:
    enc = get_backend("encodec").load(assets.encodec)
    wav = torch.randn(1, 1, 4800) * 0.1
    with enc.use_setting(6.0) as window:
        assert window is None and enc.num_codebooks == 8
        assert enc.encode(wav, window).codes.shape[1] == 8
    assert enc.bandwidth == 1.5  # restored
    with pytest.raises(ValueError, match="bandwidth must be one of"), enc.use_setting(2.0):
        pass
    # a second thread waits for the first one's block: it never sees another bandwidth
    seen: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with enc.use_setting(12.0):
            inside.set()
            release.wait(10)
            seen.append(enc.num_codebooks)

    def second() -> None:
        inside.wait(10)
        with enc.use_setting(3.0):
            seen.append(enc.num_codebooks)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert seen == [16, 4]


def test_bandwidth_stays_out_of_the_latent_identity(assets: AppAssets) -> None:
    enc = get_backend("encodec").load(assets.encodec)
    before = state_dict_hash(enc)
    enc.apply_setting(6.0)
    assert state_dict_hash(enc) == before
    assert "bandwidth" not in enc.latent_config_dict() and "bandwidth" in enc.config_dict()


# --- the registry and the line-up ---------------------------------------------------------------
def test_registry_and_specs() -> None:
    assert {"almtokenizer", "encodec", "encodec_official"} <= set(BACKENDS)
    with pytest.raises(ValueError, match="unknown codec backend 'dac'; known: almtokenizer"):
        get_backend("dac")
    assert CodecSpec.parse("encodec=ckpt/x@EnCodec small") == CodecSpec(
        "encodec", Path("ckpt/x"), "EnCodec small"
    )
    assert CodecSpec.parse("encodec_official") == CodecSpec("encodec_official")
    assert unique_labels(["EnCodec", "EnCodec", "A"]) == ["EnCodec", "EnCodec 2", "A"]


def test_default_line_up_adds_the_official_encodec_when_present(
    assets: AppAssets, hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = default_specs(assets.alm, assets.encodec)
    assert [s.backend for s in specs] == ["almtokenizer", "encodec", "encodec_official"]
    codecs = load_codec_list(specs)
    assert [c.label for c in codecs] == ["ALMTokenizer", "EnCodec", "EnCodec (official)"]
    assert [c.key for c in codecs] == ["almtokenizer", "encodec", "encodec_official"]
    assert codecs[2].source == f"official:{hub}"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert [s.backend for s in default_specs(assets.alm, assets.encodec)] == [
        "almtokenizer", "encodec",
    ]  # fmt: skip
    user = default_specs(assets.alm, assets.encodec, encodec_weights=hub)  # a user path
    assert user[-1] == CodecSpec("encodec_official", hub)


def test_app_shows_three_codecs_with_the_official_file(assets: AppAssets, hub: Path) -> None:
    studio = Studio.load(assets.config(warmup=False))
    assert [c.label for c in studio.codecs] == ["ALMTokenizer", "EnCodec", "EnCodec (official)"]
    assert not studio.notices
    assert studio.codec("encodec_official").codec.weights_source == f"official:{hub}"


def test_three_codecs_side_by_side_in_every_tab(assets: AppAssets, tmp_path: Path) -> None:
    """A third codec (`--codec encodec=DIR@EnCodec small`) gets its own control, column,
    players and map panel; its control has its own event and API parameter."""
    from app.tabs import reconstruct, timbre, traversal
    from app.ui import build_demo

    small = EnCodecCodec.from_config(SMALL_ENCODEC).save_pretrained(tmp_path / "enc_small")
    studio = Studio.load(
        assets.config(warmup=False, codecs=(f"encodec={small}@EnCodec small",), cache_dir=None)
    )
    assert [c.key for c in studio.codecs] == ["almtokenizer", "encodec", "encodec_small"]
    names = [n for _, n in reconstruct.controls(studio)]
    assert names == ["window", "bandwidth", "encodec_small_bandwidth"]
    out = reconstruct.reconstruct(studio, str(assets.clip), 4, 1.5, 6.0)
    assert len(out) == 2 + 3 * 5 + 1
    assert [r[:2] for r in out[-1]] == [
        ["ALMTokenizer", "w=4"], ["EnCodec", "1.5 kbps"], ["EnCodec small", "6 kbps"],
    ]  # fmt: skip
    misses = studio.results.misses
    moved = reconstruct.set_setting(studio, "encodec_small", str(assets.clip), 4, 1.5, 3.0)
    assert studio.results.misses == misses + 1 and "(3 kbps)" in moved[1]
    *players, zpath, caption = timbre.transfer(studio, str(assets.clip), "cello", "", 1.0, 4)
    assert len(players) == 6 and "cello" in caption
    *trav, _, _ = traversal.traverse_both(
        studio, ["bass A3", "clarinet A6"], None, "glide", 4, "linear", 4
    )
    assert len(trav) == 3
    demo = build_demo(studio)
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    assert {"set_window", "set_bandwidth", "set_encodec_small_bandwidth"} <= set(fns)
    params = list(inspect.signature(fns["reconstruct"].fn).parameters)
    assert params == ["audio", "window", "bandwidth", "encodec_small_bandwidth", "progress"]
    lm = studio.latent_map("pca", "instrument", 4)
    assert [p.title.split(" (")[0] for p in lm.panels] == [c.label for c in studio.codecs]


def test_app_offers_0p75_kbps_when_the_encodec_checkpoint_lists_it(
    assets: AppAssets, tmp_path: Path
) -> None:
    """The bandwidth radio follows the checkpoint: a config listing 0.75 kbps gets it (the
    codec starts there, at its lowest), one codebook at 750 bit/s in the comparison table."""
    from app.tabs import reconstruct
    from app.ui import build_demo

    four = [0.75, 1.5, 3.0, 6.0]
    torch.manual_seed(0)
    path = EnCodecCodec.from_config(
        {**SMALL_ENCODEC, "target_bandwidths": four, "train_bandwidths": four}
    ).save_pretrained(tmp_path / "enc_four")
    studio = Studio.load(assets.config(encodec_checkpoint=path, warmup=False, cache_dir=None))
    entry = studio.codec("encodec")
    assert entry.setting.choices == tuple(four) and entry.codec.bandwidth == 0.75
    demo = build_demo(studio)
    radio = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "bandwidth")
    assert [v for _, v in radio.choices] == four and radio.value == 0.75
    out = reconstruct.reconstruct(studio, str(assets.clip), 4, 0.75)
    row = next(r for r in out[-1] if r[0] == "EnCodec")
    assert row[1:4] == ["0.75 kbps", 75.0, 0.75]  # 75 tokens/s x 1 codebook x 10 bits
    assert entry.codec.bandwidth == 0.75


def test_app_cli_validates_codec_flags(assets: AppAssets, capsys) -> None:
    from app.cli import main

    for argv, needle in (
        (["--codec", "dac=x"], "unknown backend 'dac'"),
        (["--codec", "encodec=/nonexistent/x"], "does not exist"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--dataset-root", str(assets.dataset)])
        assert e.value.code == 2 and needle in capsys.readouterr().err
