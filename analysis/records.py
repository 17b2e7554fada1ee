"""The records an evaluation produces (`analysis.evaluate`) and its report files are written
from (`analysis.report`): one row per codec setting, and the whole report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from analysis.probe import ProbeScores


@dataclass
class EvalRow:
    """Mean scores of one codec setting over the held-out clips (NaN where undefined)."""

    codec: str
    setting: str
    window: int | None
    bandwidth_kbps: float | None
    tokens_per_second: float
    codes_per_second: float
    bitrate: float
    mel_distance: float
    si_sdr: float
    stoi: float
    pesq: float
    pitch_accuracy: float  # share of pitched note clips whose reconstruction keeps the pitch
    n_clips: int
    n_speech: int
    recognised_as_source: float = math.nan  # share the audio judge names as the clip's class
    visqol: float = math.nan  # ViSQOL v3 audio mode (48 kHz), MOS-LQO 1..5
    n_visqol: int = 0  # clips ViSQOL scored (its clip budget, minus clips too short)
    dnsmos_sig: float = math.nan  # DNSMOS P.835 on speech clips only
    dnsmos_bak: float = math.nan
    dnsmos_ovrl: float = math.nan
    f0_rmse_cents: float = math.nan  # neural tracker, frames voiced in both
    voicing_agreement: float = math.nan
    not_scored: str = ""  # "visqol: 3 clips shorter than ViSQOL's minimum; ..."

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluationReport:
    """Rows per codec setting, probe scores per codec and attribute, and the files written."""

    rows: list[EvalRow]
    probes: dict[str, dict[str, ProbeScores]]
    heldout_sound_ids: list[int]
    files: dict[str, Path] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)  # the judge's fitting figures
    transfers: list[Any] = field(default_factory=list)  # judge_grid.GridSummary rows
    transfer_rows: list[Any] = field(default_factory=list)  # judge_grid.TransferRow rows
