"""`python -m analysis transfer --method ...` prints what the judge hears; `evaluate` leads its
report with the judged figures and writes the transfer grid."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from analysis.cli import main
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("jcli")
    root = timbre_dataset(base / "gs", ("flute", "cello", "bass"), (48, 55, 57, 60, 64, 69))
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
        "--cache-dir", str(setup["base"] / "cache" / "latents"),
    ]  # fmt: skip


def test_transfer_method_and_verdict(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    clip = next(setup["root"].rglob("*.wav"))
    assert main(["transfer", *_args(setup, tmp_path / "tr"), "--clip", str(clip),
                 "--target", "cello", "--method", "pitch_adain"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert out.strip().endswith(".zip") and "pitch_adain" not in out
    lines = [ln for ln in err.splitlines() if "sounds like" in ln]
    assert len(lines) == 2 and all("(before: " in ln for ln in lines)
    assert lines[0].startswith("almtokenizer") and ": sounds like " in lines[0]
    assert (setup["base"] / "cache" / "judge").is_dir()  # the judge sits next to the latents
    with pytest.raises(SystemExit) as e:
        main(["transfer", *_args(setup, tmp_path), "--clip", str(clip), "--target", "cello",
              "--method", "magic"])  # fmt: skip
    assert e.value.code == 2 and "unknown transfer method 'magic'" in capsys.readouterr().err


def test_evaluate_leads_with_the_judge(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ev"
    assert main(["evaluate", *_args(setup, out), "--windows", "4", "--bandwidths", "1.5",
                 "--max-clips", "3", "--no-probe", "--transfer-clips", "2",
                 "--transfer-methods", "mean,knn", "--transfer-alphas", "1"]) == 0  # fmt: skip
    md = (out / "results.md").read_text()
    assert md.startswith("## Heard by the audio judge") and "| knn | 1 |" in md
    rows = list(csv.DictReader((out / "transfers.csv").open()))
    assert len(rows) == 2 * 2 * 2 * 2  # sources x other instruments x methods x codecs
    assert {r["method"] for r in rows} == {"mean", "knn"} and {r["alpha"] for r in rows} == {"1.0"}
    data = json.loads((out / "results.json").read_text())
    assert all(0 <= r["recognised_as_source"] <= 1 for r in data["rows"])
    out2 = tmp_path / "ev2"
    assert main(["evaluate", *_args(setup, out2), "--windows", "4", "--bandwidths", "1.5",
                 "--max-clips", "2", "--no-probe", "--no-judge"]) == 0  # fmt: skip
    assert "audio judge" not in (out2 / "results.md").read_text()
    assert not (out2 / "transfers.csv").exists()
