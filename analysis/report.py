"""Report files of an evaluation: CSV, JSON, Markdown tables and quality-vs-bitrate plots.

The Markdown leads with what the audio judge hears (reconstructions recognised as their source,
the timbre-transfer grid) when the evaluation ran with a judge; the latent-space probe tables
follow."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from analysis import rate_quality
from analysis.records import EvalRow, EvaluationReport

log = logging.getLogger(__name__)

_ROW_COLUMNS = (
    "codec", "setting", "bitrate", "visqol", "pitch_accuracy", "f0_rmse_cents",
    "recognised_as_source", "dnsmos_ovrl", "si_sdr", "mel_distance", "stoi", "pesq", "n_clips",
    "n_visqol",
)  # fmt: skip
_PROBE_COLUMNS = (
    "attribute", "n_classes", "chance", "linear_accuracy", "nonlinear_accuracy", "ari", "nmi",
    "homogeneity", "silhouette",
)  # fmt: skip


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return "-" if v is None else str(v)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def _pct(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{100 * v:.0f}%"


def judged_markdown(report: EvaluationReport) -> list[str]:
    """The audio-domain section: the judge's own accuracy, reconstructions recognised as their
    source per codec and setting, and the transfer grid (empty without a judge)."""
    if not report.judge:
        return []
    j = report.judge
    lines = [
        "## Heard by the audio judge", "",
        f"Judge: logistic regression on audio features of {j.get('n_train', '?')} real clips of "
        f"the training split ({len(j.get('classes', []))} classes), never on codec output. "
        f"Grouped 5-fold CV accuracy {_fmt(j.get('cv_accuracy', math.nan))}; with a whole "
        f"octave unseen {_fmt(j.get('octave_holdout_accuracy', math.nan))}; clean held-out "
        f"notes {_fmt(j.get('heldout_accuracy', math.nan))}.", "",
        "| codec | setting | bitrate | recognised as source | pitch kept |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for r in report.rows:
        lines.append(
            f"| {r.codec} | {r.setting} | {_fmt(r.bitrate)} | {_pct(r.recognised_as_source)} "
            f"| {_pct(r.pitch_accuracy)} |"
        )
    if report.transfers:
        from analysis.metrics.judge_grid import summary_markdown

        n_src = len({t.source for t in report.transfer_rows})
        lines += ["", f"### Timbre transfer judged by ear ({n_src} held-out clips x every "
                  "other instrument)", "", summary_markdown(report.transfers)]  # fmt: skip
    return lines + [""]


def markdown_tables(report: EvaluationReport) -> str:
    """Markdown: the judge's section (when judged), one table of quality per setting, one
    table of probe scores per codec."""
    lines = judged_markdown(report)
    lines += ["## Reconstruction quality on held-out clips", ""]
    lines.append("| " + " | ".join(_ROW_COLUMNS) + " |")
    lines.append("|" + "---|" * len(_ROW_COLUMNS))
    for r in report.rows:
        d = r.as_dict()
        lines.append("| " + " | ".join(_fmt(d[c]) for c in _ROW_COLUMNS) + " |")
    skipped = [f"- {r.codec} {r.setting}: {r.not_scored}" for r in report.rows if r.not_scored]
    if skipped:
        lines += ["", "Not scored (and why):", *skipped]
    for codec, scores in report.probes.items():
        lines += ["", f"## Semantic probe: {codec}", ""]
        lines.append("| " + " | ".join(_PROBE_COLUMNS) + " |")
        lines.append("|" + "---|" * len(_PROBE_COLUMNS))
        for s in scores.values():
            d = s.as_dict()
            lines.append("| " + " | ".join(_fmt(d[c]) for c in _PROBE_COLUMNS) + " |")
    lines += ["", f"Held-out sounds: {len(report.heldout_sound_ids)}", ""]
    return "\n".join(lines)


def _by_codec(rows: list[EvalRow]) -> dict[str, list[EvalRow]]:
    out: dict[str, list[EvalRow]] = {}
    for r in rows:
        if not math.isnan(r.bitrate):  # the clean originals have no bitrate
            out.setdefault(r.codec, []).append(r)
    return {k: sorted(v, key=lambda r: r.bitrate) for k, v in out.items()}


def plot_png(rows: list[EvalRow], path: Path) -> Path:
    """Mel distance, SI-SDR and pitch accuracy against bitrate, one line per codec (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    keys = ("mel_distance", "si_sdr", "pitch_accuracy")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for codec, rs in _by_codec(rows).items():
        x = [r.bitrate / 1000 for r in rs]
        for ax, key in zip(axes, keys):
            ax.plot(x, [getattr(r, key) for r in rs], marker="o", label=codec)
            for i, (r, xv) in enumerate(zip(rs, x)):
                if len(rs) <= 4 or i in (0, len(rs) - 1):  # label the ends of long sweeps only
                    ax.annotate(r.setting, (xv, getattr(r, key)), fontsize=7, alpha=0.7)
    labels = (
        "mel distance (lower is better)",
        "SI-SDR dB (higher is better)",
        "pitch kept, share of notes (higher is better)",
    )
    for ax, label in zip(axes, labels):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10, 20]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bitrate (kbps)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_html(rows: list[EvalRow], path: Path) -> Path:
    """The same plot as an interactive plotly HTML file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("mel distance", "SI-SDR (dB)"))
    for codec, rs in _by_codec(rows).items():
        x = [r.bitrate / 1000 for r in rs]
        for col, key in ((1, "mel_distance"), (2, "si_sdr")):
            fig.add_trace(
                go.Scatter(
                    x=x, y=[getattr(r, key) for r in rs], mode="lines+markers", name=codec,
                    legendgroup=codec, showlegend=col == 1, text=[r.setting for r in rs],
                    hovertemplate="%{text}: %{y:.3f} at %{x:.2f} kbps",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(type="log", title_text="bitrate (kbps)")
    fig.update_layout(template="plotly_white", title="Quality against bitrate (held-out clips)")
    fig.write_html(str(path), include_plotlyjs=True)
    return path


def write_report(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write results.csv, results.json, results.md, quality_vs_bitrate.png/.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out / "results.csv",
        "json": out / "results.json",
        "md": out / "results.md",
        "png": out / "quality_vs_bitrate.png",
        "html": out / "quality_vs_bitrate.html",
        "rate_quality_png": out / "rate_quality.png",
        "rate_quality_html": out / "rate_quality.html",
    }
    with open(files["csv"], "w", newline="") as f:
        fields = list(report.rows[0].as_dict()) if report.rows else list(_ROW_COLUMNS)
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in report.rows:
            writer.writerow(r.as_dict())
    payload = {
        "rows": [r.as_dict() for r in report.rows],
        "probes": {c: {a: s.as_dict() for a, s in ps.items()} for c, ps in report.probes.items()},
        "heldout_sound_ids": report.heldout_sound_ids,
        "judge": report.judge,
        "transfers": [t.as_dict() for t in report.transfers],
    }
    if report.transfer_rows:
        files["transfers_csv"] = out / "transfers.csv"
        with open(files["transfers_csv"], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(report.transfer_rows[0].as_dict()))
            writer.writeheader()
            for t in report.transfer_rows:
                writer.writerow(t.as_dict())
    files["json"].write_text(json.dumps(_json_safe(payload), indent=2))
    files["md"].write_text(markdown_tables(report))
    plot_png(report.rows, files["png"])
    plot_html(report.rows, files["html"])
    rows = [r.as_dict() for r in report.rows]
    rate_quality.plot_png(rows, files["rate_quality_png"])
    rate_quality.figure(rows).write_html(str(files["rate_quality_html"]), include_plotlyjs="cdn")
    log.info("wrote evaluation report to %s", out)
    return files
