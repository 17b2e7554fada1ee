"""Continuation (`analysis.continuation`, `analysis.continuation_eval`, `python -m analysis
continue` / `continue-eval`): lengths and boundaries, the prompt's codes are the codec's own,
seeded sampling, named errors, the refusal of another codec's LM, the CLI round trip and the
evaluation table's arithmetic. Tiny random codecs and tiny random LMs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from analysis.cli import main
from analysis.continuation import ClipError, continue_clip, load_codec_lm
from analysis.continuation_eval import (
    ClipOutcome,
    ContinuationReport,
    EvalClip,
    evaluate_continuations,
    summarise,
)
from analysis.continuation_lms import CodecLM
from analysis.models import LoadedCodec
from codec.lm import (
    LMModelConfig,
    TokenizerMismatchError,
    TokenizerRecord,
    TokenShape,
    build_lm,
    save_lm,
)
from codec.models.base import Codec
from codec.models.registry import load_codec
from tests.tiny_models import timbre_dataset, timbre_tone, tiny_alm, tiny_encodec

SR = 24000
WINDOW = 4  # tiny ALMTokenizer: 75 / 4 = 18.75 token frames per second
torch.set_num_threads(1)


def make_lm(codec: Codec, window: int | None, folder: Path, context: int = 400, seed: int = 0):
    """A tiny random delay LM whose tokenizer record names `codec` (at its current bandwidth)."""
    rec = TokenizerRecord(
        codec.name, codec.checkpoint_hash, window, getattr(codec, "bandwidth", None),
        codec.num_codebooks, codec.codebook_size, float(codec.frame_rate(window)),
    )  # fmt: skip
    torch.manual_seed(seed)
    cfg = LMModelConfig(dim=32, n_layers=1, n_heads=2, dropout=0.0)
    lm = build_lm(cfg, TokenShape(rec.n_q, rec.codebook_size, context))
    lm.tokenizer = rec
    return save_lm(lm, folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("cont")
    alm = load_codec(tiny_alm().save_pretrained(base / "alm")).eval()
    enc = load_codec(tiny_encodec().save_pretrained(base / "enc")).eval()
    enc.apply_setting(1.5)
    lms = base / "lms"
    paths = {
        "alm": make_lm(alm, WINDOW, lms / "lm_almtokenizer_tiny"),
        "enc": make_lm(enc, None, lms / "lm_encodec_tiny"),
        "alm_short": make_lm(alm, WINDOW, base / "alm_short", context=40),
    }
    clip = torch.as_tensor(timbre_tone("cello", 57, 2.0, seed=1), dtype=torch.float32)
    clip_path = base / "cello.wav"
    sf.write(clip_path, clip.numpy(), SR, subtype="FLOAT")
    return {"base": base, "alm": alm, "enc": enc, "lms": lms, "clip": clip[None, None],
            "clip_path": clip_path, **{f"lm_{k}": v for k, v in paths.items()}}  # fmt: skip


@pytest.fixture(params=["alm", "enc"])
def pair(request, setup) -> tuple[Codec, object, int | None]:
    codec = setup[request.param]
    return (
        codec,
        load_codec_lm(setup[f"lm_{request.param}"], codec),
        (WINDOW if request.param == "alm" else None),
    )


def test_length_boundary_and_prompt_codes(setup, pair) -> None:
    codec, lm, window = pair
    out = continue_clip(codec, lm, setup["clip"], 1.0, 1.5, top_k=8, seed=0)
    rate = codec.frame_rate(window)
    spf = SR / rate
    n = out.wav.shape[-1]
    assert out.wav.shape[:2] == (1, 1) and abs(n - 2.5 * SR) <= spf  # within one token frame
    p, g = out.settings.prompt_frames, out.settings.generated_frames
    assert out.boundary_frame == p == math.floor(rate) and p + g == out.codes.shape[-1]
    assert out.boundary_sample == round(p * spf) and n == round((p + g) * spf)
    assert out.continuation.shape[-1] == n - out.boundary_sample
    assert out.codes.shape[0] == codec.num_codebooks and out.settings.window == window
    # the prompt's codes are the codec's own codes of the prompt's audio
    own = codec.encode(setup["clip"][..., : out.boundary_sample], window).codes[0]
    assert torch.equal(out.codes[:, :p], own)
    # and the waveform is the codec's decoding of all the codes
    direct = codec.decode_codes(out.codes[None], window, n)
    assert torch.allclose(out.wav, direct, atol=1e-6)


def test_seeded_generation(setup, pair) -> None:
    codec, lm, _ = pair
    a = continue_clip(codec, lm, setup["clip"], 0.5, 1.0, top_k=8, seed=3)
    b = continue_clip(codec, lm, setup["clip"], 0.5, 1.0, top_k=8, seed=3)
    c = continue_clip(codec, lm, setup["clip"], 0.5, 1.0, top_k=8, seed=4)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.wav, b.wav)
    p = a.boundary_frame
    assert torch.equal(a.codes[:, :p], c.codes[:, :p])
    assert not torch.equal(a.codes[:, p:], c.codes[:, p:])


def test_encodec_runs_at_its_lm_bandwidth(setup, tmp_path) -> None:
    enc = setup["enc"]
    enc.apply_setting(3.0)
    folder = make_lm(enc, None, tmp_path / "lm3")  # 4 codebooks at 3 kbps
    enc.apply_setting(1.5)
    lm = load_codec_lm(folder, enc)
    out = continue_clip(enc, lm, setup["clip"], 0.2, 0.2, top_k=8)
    assert out.codes.shape[0] == 4 and out.settings.bandwidth == 3.0
    assert enc.num_codebooks == 2  # the codec's own setting is restored


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prompt_seconds": 0.02}, ValueError, "shorter than one token frame"),
        ({"prompt_seconds": 3.0}, ClipError, "longer than the clip"),
        ({"clip": torch.zeros(1, 1, 2 * SR)}, ClipError, "silent"),
        ({"clip": torch.zeros(2, 1, SR)}, ClipError, r"mono waveform \[1, 1, N\]"),
        ({"clip": torch.full((1, 1, SR), math.nan)}, ClipError, "NaN"),
        ({"seconds": 1000.0}, ValueError, r"seconds \(to generate\) must be in \(0, 30\]"),
        ({"seconds": 5.0, "max_seconds": 4.0}, ValueError, r"must be in \(0, 4\]"),
        ({"seconds": 0.0}, ValueError, "seconds"),
        ({"temperature": 0.0}, ValueError, r"temperature must be in \(0, 10\]"),
        ({"temperature": -1.0}, ValueError, "temperature must be in"),
        ({"temperature": 10.5}, ValueError, "temperature must be in"),
        ({"temperature": math.nan}, ValueError, "temperature must be a finite number"),
        ({"top_k": 0}, ValueError, r"top_k must be an int in \[1, 16\]"),
        ({"top_k": 17}, ValueError, r"top_k must be an int in \[1, 16\] \(the codebook size\)"),
        ({"seed": -1}, ValueError, "seed must be"),
    ],
)
def test_bad_inputs_raise_named_errors(setup, kwargs, error, message) -> None:
    lm = load_codec_lm(setup["lm_alm"], setup["alm"])
    args = {"clip": setup["clip"], "prompt_seconds": 1.0, "seconds": 1.0, "top_k": 8, **kwargs}
    with pytest.raises(error, match=message):
        continue_clip(setup["alm"], lm, **args)


def test_longer_than_the_lm_context_is_refused(setup) -> None:
    lm = load_codec_lm(setup["lm_alm_short"], setup["alm"])  # 40 frames = 2.13 s
    with pytest.raises(ValueError, match="exceeds the LM's context of 40 frames"):
        continue_clip(setup["alm"], lm, setup["clip"], 1.0, 2.0, top_k=8)


def test_another_codecs_lm_is_refused(setup, tmp_path) -> None:
    with pytest.raises(TokenizerMismatchError, match="codec"):
        load_codec_lm(setup["lm_alm"], setup["enc"])
    other = load_codec(tiny_alm(seed=1).save_pretrained(tmp_path / "alm1"))
    with pytest.raises(TokenizerMismatchError, match=f"{other.checkpoint_hash} vs "):
        load_codec_lm(setup["lm_alm"], other)
    lm = load_codec_lm(setup["lm_alm"], setup["alm"])  # loaded for the right codec ...
    with pytest.raises(TokenizerMismatchError):  # ... and handed to another one
        continue_clip(other, lm, setup["clip"], 1.0, 1.0, top_k=8)


def _cli(setup, out: Path, *extra: str) -> list[str]:
    return ["continue", str(setup["clip_path"]), "--prompt-seconds", "1", "--seconds", "1",
            "--out", str(out), "--alm-checkpoint", str(setup["base"] / "alm"),
            "--encodec-checkpoint", str(setup["base"] / "enc"), "--top-k", "8", "--no-judge",
            "--lm-dir", str(setup["lms"]), *extra]  # fmt: skip


def test_cli_round_trip(setup, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(_cli(setup, out, "--codecs", "almtokenizer,encodec")) == 0
    table = capsys.readouterr().out
    for key in ("almtokenizer", "encodec"):
        wav, sr = sf.read(out / f"cello_{key}.wav")
        assert sr == SR and abs(len(wav) - 2 * SR) <= SR / 18.75
        assert f"| {key} |" in table and f"cello_{key}.wav" in table
    rows = json.loads((out / "continue.json").read_text())["rows"]
    assert [r["settings"]["seed"] for r in rows] == [0, 0] and rows[0]["boundary_sample"] > 0
    assert (out / "continue.md").read_text() == table


def test_cli_default_lms_skips_and_errors(setup, tmp_path, capsys) -> None:
    decoy = tmp_path / "lms" / "lm_almtokenizer_aaa"  # sorts first, made for another codec
    other = load_codec(tiny_alm(seed=1).save_pretrained(tmp_path / "alm1"))
    make_lm(other, WINDOW, decoy)
    save_lm(load_codec_lm(setup["lm_alm"], setup["alm"]), tmp_path / "lms" / "lm_almtokenizer_b")
    argv = _cli(setup, tmp_path / "o", "--lm-dir", str(tmp_path / "lms"))
    assert main(argv) == 0  # the decoy is passed over; encodec has no LM: skipped
    captured = capsys.readouterr()
    assert "skipped encodec: no token LM" in captured.err and "| almtokenizer |" in captured.out
    assert main([*argv, "--codecs", "encodec"]) == 1  # asked for: an error
    assert "encodec: no token LM" in capsys.readouterr().err
    assert main([*argv, "--lm", f"almtokenizer={decoy}"]) == 1  # an explicit wrong LM
    assert "checkpoint hash" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*argv, "--temperature", "0"])
    assert e.value.code == 2 and "temperature must be" in capsys.readouterr().err


def _outcome(codec: str, set_name: str, speech: bool, kept: tuple, named: tuple) -> ClipOutcome:
    hz = None if speech else 440.0
    return ClipOutcome(codec, set_name, "c.wav", "speech" if speech else "cello", speech, hz,
                       math.nan, math.nan, *kept, "x", "y", *named)  # fmt: skip


def test_eval_table_arithmetic() -> None:
    outs = [
        _outcome("alm", "demo", False, (True, True), (True, True)),
        _outcome("alm", "demo", False, (False, True), (False, True)),
        _outcome("alm", "demo", False, (True, True), (False, False)),
        _outcome("alm", "demo", False, (False, False), (None, None)),  # unknown to the judge
        _outcome("alm", "demo", True, (None, None), (True, True)),
        _outcome("alm", "demo", True, (None, None), (False, False)),
        _outcome("alm", "indep", False, (True, False), (True, False)),
    ]
    rows = {(r.set_name, r.measure): r for r in summarise(outs)}
    pitch, named, speech = (rows["demo", m] for m in ("pitch kept", "instrument named",
                                                      "speech heard"))  # fmt: skip
    assert (pitch.clips, pitch.continuation, pitch.ceiling) == (4, 0.5, 0.75)
    assert pitch.ratio == pytest.approx(2 / 3)
    assert (named.clips, named.continuation, named.ceiling) == (3, 1 / 3, 2 / 3)
    assert named.ratio == pytest.approx(0.5)
    assert (speech.clips, speech.continuation, speech.ceiling, speech.ratio) == (2, 0.5, 0.5, 1.0)
    assert math.isnan(rows["indep", "pitch kept"].ratio)  # ceiling 0: no ratio
    report = ContinuationReport(outs, {"prompt_seconds": 0.5, "seconds": 1.0, "temperature": 1.0,
                                       "top_k": 8, "seed": 0, "tracker": "fcpe"},
                                {"alm": "tiny"})  # fmt: skip
    md = report.to_markdown()
    assert "| demo | pitch kept | 4 | 50% | 75% | 0.67 |" in md
    assert "| indep | pitch kept | 1 | 100% | 0% | - |" in md
    assert json.loads(json.dumps(report.to_dict()))["rows"][-1]["ratio"] is None


class _Judge:
    classes = ("cello", "speech")

    def hear(self, wav: torch.Tensor, sr: int = SR) -> object:
        return type("V", (), {"label": "cello"})()


def test_eval_end_to_end_on_tiny_clips(setup) -> None:
    alm = setup["alm"]
    pair = CodecLM(LoadedCodec("ALM", alm, "almtokenizer"), load_codec_lm(setup["lm_alm"], alm),
                   setup["lm_alm"])  # fmt: skip
    tone = setup["clip"][..., : SR + SR // 2]
    clips = [EvalClip("demo", "note.wav", tone, "cello", 57, False),
             EvalClip("demo", "talk.wav", tone, "speech", None, True),
             EvalClip("demo", "short.wav", tone[..., :2000], "cello", 57, False)]  # fmt: skip
    report = evaluate_continuations([pair], clips, _Judge(), 0.5, 0.5, top_k=8, tracker="fcpe")
    assert [o.clip for o in report.outcomes] == ["note.wav", "talk.wav"]
    assert report.left_out == {"alm": [
        "demo: short.wav: prompt_seconds 0.5 is longer than the clip (0.083 s)"]}  # fmt: skip
    note, talk = report.outcomes
    assert note.named_continuation and note.named_reconstruction  # the stub hears cello
    assert talk.named_continuation is False and talk.pitch_kept_continuation is None
    assert note.pitch_kept_continuation is not None and note.label_hz == pytest.approx(220.0)
    measures = [(r.measure, r.clips) for r in report.rows]
    assert measures == [("pitch kept", 1), ("instrument named", 1), ("speech heard", 1)]


def test_eval_cli_on_a_tiny_dataset(setup, tmp_path, capsys) -> None:
    root = timbre_dataset(tmp_path / "gs", ("flute", "cello", "bass"), (48, 55, 57, 60, 64, 69))
    out = tmp_path / "ev"
    argv = ["continue-eval", "--dataset-root", str(root), "--heldout-root", str(root),
            "--out", str(out), "--codecs", "almtokenizer", "--alm-checkpoint",
            str(setup["base"] / "alm"), "--lm-dir", str(setup["lms"]), "--top-k", "8",
            "--prompt-seconds", "0.2", "--seconds", "0.2", "--max-clips", "2",
            "--tracker", "fcpe", "--cache-dir", str(tmp_path / "cache" / "latents")]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "continuation.md")
    data = json.loads((out / "continuation.json").read_text())
    sets = {c["set_name"] for c in data["clips"]}
    assert sets == {"demo held-out", "independent"} and len(data["clips"]) <= 4
    assert "## almtokenizer" in (out / "continuation.md").read_text()
