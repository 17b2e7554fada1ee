"""What the audio judge hears, as text and figures for the app (no Gradio here).

- `JudgeLoader`: fits or reads the dataset's judge in a background thread at start-up, so no
  request ever waits for a fit it did not ask for; `get(progress)` waits (reporting progress)
  only when the judge is needed before it is ready.
- `transfer_caption`: "sounds like: cello 0.62 (before: violin 0.71); pitch A3 -> A3".
- `recognised_caption`: "recognised as: flute 0.81, C5".
- `probability_strip`: a plotly heatmap of the judge's class probabilities along a traversal
  (one column per step or glide slice), to sit under the players.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.metrics.judge import DEFAULT_JUDGE_CACHE, Judge, Verdict, load_or_fit_judge
from codec.models.base import SAMPLE_RATE

log = logging.getLogger(__name__)


class JudgeLoader:
    """The judge of one dataset, loaded once in the background.

    Args:
        root: the Good-sounds-layout dataset whose training split the judge learns from.
        cache_dir: where the fitted judge is cached (None: never written).
    """

    def __init__(
        self, root: str | Path, cache_dir: str | Path | None = DEFAULT_JUDGE_CACHE
    ) -> None:
        self.root, self.cache_dir = Path(root), cache_dir
        self._judge: Judge | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._progress = 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> JudgeLoader:
        """Start loading in a daemon thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="judge", daemon=True)
                self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._judge = load_or_fit_judge(self.root, self.cache_dir, progress=self._set)
            log.info("%s", self._judge.summary())
        except Exception as e:  # reported to whoever asks for the judge
            log.warning("audio judge unavailable: %s", e)
            self._error = e
        finally:
            self._progress = 1.0
            self._done.set()

    def _set(self, fraction: float) -> None:
        self._progress = float(fraction)

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._judge is not None

    def status(self) -> str:
        """One line for the page: loading progress, the judge's accuracy, or why it failed."""
        if not self._done.is_set():
            return f"audio judge: fitting on the dataset's training notes ({self._progress:.0%})"
        if self._judge is None:
            return f"audio judge unavailable: {self._error}"
        return self._judge.summary()

    def get(self, progress: Callable[[float, str], Any] | None = None) -> Judge | None:
        """The judge, waiting for the background load (reporting progress) if needed; None when
        it could not be built (the reason is in `status()`)."""
        self.start()
        while not self._done.wait(0.25):
            if progress is not None:
                progress(self._progress, "fitting the audio judge")
        return self._judge


def _wav(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()


def recognised_caption(verdict: Verdict) -> str:
    """ "recognised as: flute 0.81, C5"."""
    return f"recognised as: {verdict.text()}"


def transfer_caption(before: Verdict, after: Verdict) -> str:
    """ "sounds like: cello 0.62 (before: violin 0.71); pitch A3 -> A3"."""
    pitch = f"; pitch {before.note or 'none'} -> {after.note or 'none'}"
    return (
        f"sounds like: {after.label} {after.probability:.2f} "
        f"(before: {before.label} {before.probability:.2f}){pitch}"
    )


def path_probabilities(
    judge: Judge, wavs: Sequence[torch.Tensor | np.ndarray], sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Class probabilities `[len(wavs), C]` of the clips along a path."""
    return np.stack([np.array(list(judge.proba(_wav(w), sr).values())) for w in wavs])


def glide_slices(wav: torch.Tensor | np.ndarray, n: int) -> list[torch.Tensor]:
    """`n` equal consecutive slices of one clip (for judging a glide along its length)."""
    x = _wav(wav).reshape(-1)
    bounds = np.linspace(0, x.numel(), n + 1).astype(int)
    return [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def probability_strip(
    judge: Judge,
    probs: np.ndarray,
    columns: Sequence[str],
    title: str = "",
    top: int = 6,
) -> Any:
    """A plotly heatmap: the judge's probabilities (rows: the `top` classes that reach the
    highest probability anywhere on the path; columns: steps), the winner written in each
    column."""
    import plotly.graph_objects as go

    probs = np.atleast_2d(probs)
    order = np.argsort(-probs.max(0), kind="stable")[: max(1, min(top, probs.shape[1]))]
    classes = [judge.classes[i] for i in order]
    winners = [judge.classes[i] for i in probs.argmax(1)]
    fig = go.Figure(
        go.Heatmap(
            z=probs[:, order].T, x=list(columns), y=classes, zmin=0, zmax=1,
            colorscale="Viridis", colorbar={"title": "P", "thickness": 10},
            hovertemplate="%{x}: %{y} %{z:.2f}<extra></extra>",
        )
    )  # fmt: skip
    for x, w, p in zip(columns, winners, probs.max(1)):
        fig.add_annotation(x=x, y=1.02, yref="paper", text=f"{w}<br>{p:.2f}", showarrow=False,
                           font={"size": 9})  # fmt: skip
    fig.update_layout(
        title=title or "what the judge hears along the path",
        height=120 + 28 * len(classes), margin={"l": 90, "r": 20, "t": 70, "b": 30},
        template="plotly_white",
    )  # fmt: skip
    return fig
