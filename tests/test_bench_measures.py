"""The measures' benchmarks and pilots print what they promise, in one run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny_models import timbre_dataset

torch.set_num_threads(1)


def test_metrics_speed_prints_every_measure(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import metrics_speed

    rc = metrics_speed.main(["--seconds", "1.2", "--repeats", "1", "--skip", "CREPE", "PESQ"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "measure" not in ln]
    names = [r.split("|")[1].strip() for r in rows]
    assert "ViSQOL (audio, 48 kHz)" in names and "F0 FCPE" in names
    assert not any("CREPE" in n or "PESQ" in n for n in names)
    assert all(float(r.split("|")[2]) >= 0 for r in rows)


def test_f0_pilot_scores_trackers_against_labels(tmp_path: Path) -> None:
    from bench import f0_pilot

    root = timbre_dataset(tmp_path / "gs", ("flute", "cello"), (48, 60, 69))
    table = f0_pilot.run([root], ["autocorrelation", "fcpe"], max_clips=4)
    lines = [ln for ln in table.splitlines() if str(root) in ln]
    names = [ln.split("|")[2].strip() for ln in lines]
    assert names == ["autocorrelation", "fcpe alone", "fcpe + harmonic check"]
    for ln in lines:
        cells = [c.strip() for c in ln.split("|")]
        assert cells[3] == "4" and 0.0 <= float(cells[4].rstrip(" %")) <= 100.0


def test_gates_refuse_a_bandwidth_the_checkpoint_does_not_offer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench.gates at 0.75 kbps with an EnCodec that offers 1.5 / 3: a usage error naming 0.75
    and the offered bandwidths, before any clip is loaded."""
    from bench import gates
    from tests.tiny_models import tiny_encodec

    enc = tiny_encodec().save_pretrained(tmp_path / "enc")
    with pytest.raises(SystemExit) as e:
        gates.main(["--dataset", str(tmp_path / "none"), "--encodec", str(enc),
                    "--bandwidths", "0.75,3"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"--bandwidths: --encodec {enc} does not offer 0.75 kbps: its checkpoint offers 1.5, "
        "3 kbps" in err
    ), err
