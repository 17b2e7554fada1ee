"""`python -m analysis`: help, argument errors, and a round trip of every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
import torch

from analysis.cli import main
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli")
    root = timbre_dataset(base / "gs", ("flute", "cello", "bass"), (48, 57, 60, 69))
    return {
        "root": root,
        "alm": tiny_alm().save_pretrained(base / "alm"),
        "enc": tiny_encodec().save_pretrained(base / "enc"),
        "base": base,
    }


def _args(setup: dict[str, Path], out: Path) -> list[str]:
    return [
        "--alm-checkpoint", str(setup["alm"]), "--encodec-checkpoint", str(setup["enc"]),
        "--dataset-root", str(setup["root"]), "--out", str(out), "--window", "4",
        "--cache-dir", str(setup["base"] / "cache"),
    ]  # fmt: skip


def test_module_help_runs() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0
    for cmd in ("map", "traverse", "transfer", "evaluate", "probe"):
        assert cmd in p.stdout


@pytest.mark.parametrize("cmd", ["map", "traverse", "transfer", "evaluate", "probe"])
def test_each_command_explains_itself(cmd: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in (
        "--alm-checkpoint",
        "--encodec-checkpoint",
        "--encodec-weights",
        "--dataset-root",
        "--out",
    ):
        assert opt in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["map", "--window", "11"], "window must be in 2..10"),
        (["map", "--window", "x"], "window must be an integer"),
        (["map", "--method", "isomap"], "invalid choice"),
        (["transfer", "--clip", "a.wav", "--target", "cello", "--alpha", "2"], "alpha must be in"),
        (["transfer", "--target", "cello"], "--clip"),
        (["evaluate", "--windows", "1-4"], "window must be in 2..10"),
        (["evaluate", "--bandwidths", "1.5,-3"], "positive"),
        (["reconstruct", "a.wav", "--bandwidths", "most"], "comma-separated numbers"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_unusable_inputs_exit_1_with_one_line(
    setup: dict[str, Path], tmp_path: Path, capsys
) -> None:
    args = _args(setup, tmp_path)
    bad_ckpt = [*args, "--alm-checkpoint", str(tmp_path / "nope")]
    assert main(["probe", *bad_ckpt]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "does not exist" in err and "Traceback" not in err
    assert main(["traverse", *args, "bass A3", "kazoo A3"]) == 1
    assert "unknown instrument 'kazoo'" in capsys.readouterr().err
    assert main(["traverse", *args, "bass A3"]) == 1
    assert "two or more waypoints" in capsys.readouterr().err
    assert (
        main(["transfer", *args, "--clip", str(tmp_path / "missing.wav"), "--target", "cello"]) == 1
    )
    assert "missing.wav" in capsys.readouterr().err
    assert main(["map", *args, "--dataset-root", str(tmp_path)]) == 1
    assert "database.sqlite" in capsys.readouterr().err


def test_a_bandwidth_the_checkpoint_does_not_offer_exits_1_naming_it(
    setup: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny EnCodec offers 1.5 and 3 kbps: asking evaluate or reconstruct for 0.75 fails at
    once (before the judge is fitted) with one line naming 0.75 and what it offers."""
    import analysis.cli as cli

    def no_judge(args: object) -> None:
        raise AssertionError("the judge was fitted before the bandwidths were checked")

    monkeypatch.setattr(cli, "_judge", no_judge)
    clip = next(setup["root"].rglob("*.wav"))
    evaluate = ["evaluate", *_args(setup, tmp_path), "--bandwidths", "0.75,1.5"]
    reconstruct = ["reconstruct", *_args(setup, tmp_path), str(clip), "--bandwidths", "0.75"]
    for argv in (evaluate, reconstruct):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert (
            f"python -m analysis {argv[0]}: error: encodec does not offer 0.75 kbps: its "
            "checkpoint offers 1.5, 3 kbps" in err
        ), err
        assert "Traceback" not in err and not (tmp_path / "reconstructions").exists()


def test_an_encodec_bandwidth_no_codec_offers_exits_1_naming_the_choices(
    setup: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """`--encodec-bandwidth 0.75` with only the tiny EnCodec (1.5 and 3 kbps) is refused with
    one line naming each codec's choices, not silently run at 1.5 kbps."""
    argv = ["map", *_args(setup, tmp_path), "--codecs", "encodec", "--encodec-bandwidth", "0.75"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--encodec-bandwidth 0.75 kbps is offered by no codec (EnCodec: 1.5, 3)" in err, err
    assert "Traceback" not in err and not (tmp_path / "map").exists()


def test_round_trip_of_every_command(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    clip = next(setup["root"].rglob("*.wav"))

    assert main(["map", *_args(setup, tmp_path / "map"), "--method", "pca", "--color-by", "octave",
                 "--upload", str(clip), "--with-probe"]) == 0  # fmt: skip
    html = tmp_path / "map" / "map_pca_octave.html"
    assert html.is_file() and "plotly" in html.read_text()[:3000].lower()
    assert (tmp_path / "map" / "embedding_almtokenizer_pca.npz").is_file()
    assert (tmp_path / "map" / "embedding_encodec_pca.npz").is_file()

    assert main(["traverse", *_args(setup, tmp_path / "trav"), "bass A3", str(clip), "cello",
                 "--steps", "3", "--mode", "spherical"]) == 0  # fmt: skip
    (zip_path,) = list((tmp_path / "trav").rglob("*.zip"))
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
    assert "almtokenizer_w4/step_04.wav" in names and "encodec/glide.wav" in names

    assert main(["transfer", *_args(setup, tmp_path / "tr"), "--clip", str(clip),
                 "--target", "cello", "--alpha", "0.5", "--codecs", "encodec"]) == 0  # fmt: skip
    (zip_path,) = list((tmp_path / "tr").rglob("*.zip"))
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["encodec/after.wav", "encodec/before.wav"]

    assert main(["probe", *_args(setup, tmp_path / "pr"), "--attributes", "instrument,octave"]) == 0
    data = json.loads((tmp_path / "pr" / "probe.json").read_text())
    assert set(data) == {"almtokenizer", "encodec"} and set(data["encodec"]) == {
        "instrument",
        "octave",
    }

    assert main(["evaluate", *_args(setup, tmp_path / "ev"), "--windows", "2,10",
                 "--bandwidths", "1.5", "--max-clips", "2", "--no-probe"]) == 0  # fmt: skip
    for name in ("results.csv", "results.json", "results.md", "quality_vs_bitrate.png",
                 "rate_quality.png", "rate_quality.html"):  # fmt: skip
        assert (tmp_path / "ev" / name).is_file()
    rows = json.loads((tmp_path / "ev" / "results.json").read_text())["rows"]
    assert [r["setting"] for r in rows] == ["original", "w=2", "w=10", "1.5 kbps"]
    assert rows[0]["codec"] == "clean" and "visqol" in rows[1] and "f0_rmse_cents" in rows[1]
    capsys.readouterr()


def test_reconstruct_writes_every_setting_and_metrics(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    clip = next(setup["root"].rglob("*.wav"))
    out = tmp_path / "rec"
    assert main(["reconstruct", *_args(setup, out), str(clip), "--windows", "3,10",
                 "--bandwidths", "1.5"]) == 0  # fmt: skip
    (zip_path,) = list(out.rglob("*.zip"))
    with zipfile.ZipFile(zip_path) as zf:
        names = {Path(n).name for n in zf.namelist()}
    assert names == {"original.wav", "almtokenizer_w3.wav", "almtokenizer_w10.wav",
                     "encodec_1.5kbps.wav"}  # fmt: skip
    rows = (zip_path.parent / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("clip,codec,setting,bitrate") and len(rows) == 4
    wav_lengths = {sf.info(str(f)).frames for f in zip_path.parent.rglob("*.wav")}
    assert len(wav_lengths) == 1  # every reconstruction has the original's length
