"""Latent traversals between two or more waypoints, rendered as a glide and as discrete steps.

Waypoints are clips (a file path or a waveform) or attribute groups ("bass A3"). A clip
waypoint is its own latent frames; a group waypoint is its medoid note's frames shifted onto
the group centroid (see `analysis.groups`). Sequences of different lengths are resampled in
time to the longest one (`interpolate.resample_time`), and every rendering is decoded to that
waypoint's number of samples.

- Steps: for each pair of consecutive waypoints, `steps` points t = 0, 1/(steps-1), ..., 1
  (shared endpoints counted once: (K-1)(steps-1)+1 renderings in all), each decoded on its own.
  Step 0 is exactly waypoint A's frames, so it equals A's reconstruction in the chosen latent
  space, and the last step equals B's.
- Glide: every waypoint is resampled to the glide length L (default (K-1) x the common length);
  output frame i sits at path position i/(L-1) x (K-1), i.e. time and path advance together, and
  the whole sequence is decoded once: one continuous sound.

`space="continuous"` (default) uses clips' encoder latents; `space="quantized"` uses their
quantized latents, so the endpoints equal `codec.reconstruct`. Group waypoints are always
continuous (a centroid is not a codeword). In the continuous space every rendering of a codec
that declares `decodes_quantized_only` (ALMTokenizer) is snapped to its codebooks before
decoding (`analysis.codec_ops.decode_frames`), as its tokens would be: its decoder never saw
anything else (it kept the pitch of 9 % of held-out clips from unquantized latents, 64 % from
quantized ones), so the path moves from token to token and its endpoints equal the clips'
reconstructions. The quantized space decodes the blends of quantized latents as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis.codec_ops import as_batch, codec_device, decode_frames, effective_window
from analysis.export import ExportResult, export_audio
from analysis.groups import AttributeGroup, group_centroid, parse_group
from analysis.interpolate import interpolate, path_frames, resample_time
from analysis.latents import DEFAULT_CACHE_DIR
from codec.audio import load_audio
from codec.models.base import Codec

log = logging.getLogger(__name__)

SPACES = ("continuous", "quantized")


@dataclass
class Waypoint:
    """One waypoint: exactly one of `path`, `wav` (`[1, N]` at 24 kHz) or `group`."""

    label: str
    path: Path | None = None
    wav: torch.Tensor | None = None
    group: AttributeGroup | None = None


WaypointSpec = Waypoint | AttributeGroup | str | Path | torch.Tensor


def make_waypoint(spec: WaypointSpec, instruments: Iterable[str] | None = None) -> Waypoint:
    """A Waypoint from a path to an existing file, a waveform, a group or group text.

    Raises:
        GroupError: text that is neither an existing file nor a valid group.
    """
    if isinstance(spec, Waypoint):
        return spec
    if isinstance(spec, AttributeGroup):
        return Waypoint(spec.label, group=spec)
    if isinstance(spec, torch.Tensor):
        return Waypoint("clip", wav=as_batch(spec)[0])
    p = Path(spec)
    if p.is_file():
        return Waypoint(p.stem, path=p)
    group = parse_group(str(spec), instruments)
    return Waypoint(group.label, group=group)


@dataclass
class WaypointLatents:
    """A waypoint as a latent sequence: `frames [T, D]` and the clip length in samples."""

    label: str
    frames: np.ndarray
    num_samples: int


@torch.inference_mode()
def waypoint_latents(
    codec: Codec,
    waypoint: Waypoint,
    items: Sequence[Any] = (),
    window: int | None = None,
    space: str = "continuous",
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> WaypointLatents:
    """Latent sequence of one waypoint (see module docstring)."""
    if space not in SPACES:
        raise ValueError(f"unknown latent space {space!r}; choose one of {SPACES}")
    if waypoint.group is not None:
        gc = group_centroid(codec, items, waypoint.group, window, cache_dir)
        return WaypointLatents(waypoint.label, gc.sequence(), gc.medoid_num_samples)
    if waypoint.wav is not None:
        wav = as_batch(waypoint.wav)
    elif waypoint.path is not None:
        wav = load_audio(waypoint.path, codec.sample_rate)[None]
    else:
        raise ValueError(f"waypoint {waypoint.label!r} has no clip and no group")
    enc = codec.encode(wav.to(codec_device(codec)), effective_window(codec, window))
    lat = enc.latents if space == "continuous" else enc.quantized
    frames = lat[0].T.detach().float().cpu().numpy()
    return WaypointLatents(waypoint.label, frames, int(wav.shape[-1]))


@dataclass
class TraversalResult:
    """A traversal rendered by one codec.

    Attributes:
        codec_name, window: the codec and its effective window.
        labels: waypoint labels in order.
        steps: decoded steps, each `[1, N]` (N = `num_samples`).
        positions: path position of each step (segment index + t, from 0 to K-1).
        glide: the glide `[1, N_glide]`, or None if not rendered.
        num_samples: length N of every step.
        sample_rate: the codec's sample rate.
    """

    codec_name: str
    window: int | None
    labels: list[str]
    steps: list[torch.Tensor] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    glide: torch.Tensor | None = None
    num_samples: int = 0
    sample_rate: int = 24000

    @property
    def tag(self) -> str:
        """Folder-friendly name such as "almtokenizer_w6" or "encodec"."""
        return self.codec_name + (f"_w{self.window}" if self.window is not None else "")


def traverse(
    codec: Codec,
    waypoints: Sequence[WaypointSpec],
    items: Sequence[Any] = (),
    window: int | None = None,
    steps: int = 5,
    mode: str = "linear",
    space: str = "continuous",
    render_steps: bool = True,
    render_glide: bool = True,
    glide_seconds: float | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: bool = False,
) -> TraversalResult:
    """Render a traversal through two or more waypoints with one codec.

    Args:
        codec: any Codec.
        waypoints: clips (paths, waveforms `[1, N]`), groups or group text like "bass A3".
        items: dataset records (needed for group waypoints).
        window: window size (ignored by codecs without one).
        steps: points per segment including both ends (>= 2).
        mode: "linear" or "spherical".
        space: "continuous" or "quantized" (clip waypoints' latents).
        render_steps, render_glide: which renderings to decode.
        glide_seconds: glide duration; default (K-1) x the common clip length.
        cache_dir: latent cache for group centroids.
        progress: tqdm over steps.

    Returns:
        TraversalResult with `steps` and/or `glide`.
    """
    if len(waypoints) < 2:
        raise ValueError(f"a traversal needs two or more waypoints, got {len(waypoints)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both ends included), got {steps}")
    if glide_seconds is not None and glide_seconds <= 0:
        raise ValueError(f"glide_seconds must be > 0, got {glide_seconds}")
    interpolate(np.zeros((1, 1)), np.zeros((1, 1)), 0.5, mode)  # validates `mode` early
    codec.eval()
    win = effective_window(codec, window)
    instruments = {getattr(it, "instrument", "") for it in items}
    wps = [make_waypoint(w, instruments) for w in waypoints]
    lats = [waypoint_latents(codec, w, items, win, space, cache_dir) for w in wps]
    ref = max(range(len(lats)), key=lambda i: lats[i].frames.shape[0])
    length, n = lats[ref].frames.shape[0], lats[ref].num_samples
    seqs = [resample_time(w.frames, length) for w in lats]
    result = TraversalResult(codec.name, win, [w.label for w in lats], num_samples=n)
    snap = None if space == "continuous" else False  # None: as the codec declares
    result.sample_rate = codec.sample_rate
    if render_steps:
        ts = np.linspace(0.0, 1.0, steps)
        plan = [(s, float(t)) for s in range(len(seqs) - 1) for t in (ts if s == 0 else ts[1:])]
        for s, t in tqdm(plan, desc=f"steps {codec.name}", disable=not progress):
            frames = interpolate(seqs[s], seqs[s + 1], t, mode)
            result.steps.append(decode_frames(codec, torch.from_numpy(frames), win, n, snap))
            result.positions.append(s + t)
    if render_glide:
        k = len(seqs)
        if glide_seconds is None:
            g_len, g_n = length * (k - 1), n * (k - 1)
        else:
            g_n = int(round(glide_seconds * codec.sample_rate))
            g_len = max(2, codec.num_frames(g_n, win))
        glide = path_frames([resample_time(lt.frames, g_len) for lt in lats], mode)
        result.glide = decode_frames(codec, torch.from_numpy(glide), win, g_n, snap)
    return result


def export_traversal(
    results: Sequence[TraversalResult], export_root: str | Path, name: str = "traversal"
) -> ExportResult:
    """Write `<root>/<name>/<codec tag>/step_00.wav ...`, `glide.wav` and `<name>.zip`."""
    tracks: dict[str, dict[str, torch.Tensor]] = {}
    for r in results:
        width = max(2, len(str(len(r.steps) - 1)))
        files = {f"step_{i:0{width}d}": wav for i, wav in enumerate(r.steps)}
        if r.glide is not None:
            files["glide"] = r.glide
        tracks[r.tag] = files
    sr = results[0].sample_rate if results else 24000
    return export_audio(tracks, export_root, name, sr)
