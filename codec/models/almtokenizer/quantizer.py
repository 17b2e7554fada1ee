"""Residual vector quantization with k-means initialisation and EMA codebooks.

Each codebook is initialised by k-means: over the residuals of the first training batch, or, for
the first codebook, over precomputed features (the paper's "semantic prior": k-means centroids
of wav2vec2 / BEATs features). Codebooks are then updated by exponential moving averages (no
gradient), unused codewords are replaced by vectors of the current batch, the encoder receives
a commitment loss and a straight-through gradient.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

WARMUP_BUFFER = 8192  # vectors kept for the k-means after the quantizer warm-up


def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k-means++ seeding: `k` rows of `x` `[N, C]`, each drawn with probability proportional to
    the squared distance to the nearest row drawn so far."""
    n = x.shape[0]
    first = int(torch.randint(0, n, (1,), generator=generator))
    centers = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:  # every point already is a centre: draw uniformly
            i = int(torch.randint(0, n, (1,), generator=generator))
        else:
            i = int(torch.multinomial((d2 / total).cpu(), 1, generator=generator))
        centers.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    return torch.stack(centers)


def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int,
    generator: torch.Generator | None = None,
    max_seed_points: int = 50_000,
) -> torch.Tensor:
    """k-means of `x` `[N, C]` into `k` centroids `[k, C]`: k-means++ seeding (on at most
    `max_seed_points` rows), then Lloyd iterations; an emptied cluster keeps its centroid.

    With fewer vectors than centroids, centroids are drawn with replacement and jittered, so
    every codeword starts inside the data distribution.
    """
    x = x.detach().float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one vector")
    if n < k:
        idx = torch.randint(0, n, (k,), generator=generator, device="cpu").to(x.device)
        noise = torch.randn(k, x.shape[1], generator=generator, device="cpu").to(x.device)
        return x[idx] + 0.01 * x.std(0, keepdim=True, unbiased=False).clamp_min(1e-6) * noise
    seed_rows = x
    if n > max_seed_points:
        seed_rows = x[torch.randperm(n, generator=generator)[:max_seed_points].to(x.device)]
    centroids = kmeans_plus_plus(seed_rows, k, generator)
    for _ in range(iters):
        assign = torch.cat([torch.cdist(c, centroids).argmin(1) for c in x.split(8192)])
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def load_features(path: str | Path) -> torch.Tensor:
    """Read precomputed features `[N, C]` from `.npy` or `.safetensors` (key "features")."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"semantic-prior features {p} do not exist")
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        feats = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    elif p.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(p))
        if "features" not in tensors:
            raise ValueError(f"{p} has no tensor named 'features' (has {sorted(tensors)})")
        feats = tensors["features"].float()
    else:
        raise ValueError(f"{p}: semantic-prior features must be .npy or .safetensors")
    if feats.ndim != 2:
        raise ValueError(f"{p}: features must be [N, C], got shape {tuple(feats.shape)}")
    return feats


class EMACodebook(nn.Module):
    """One codebook of `size` codewords of dimension `dim`, updated by EMA (no gradient).

    Buffers (all in the state dict): `embed` `[K, C]`, `cluster_size` `[K]`, `embed_sum`
    `[K, C]`, `code_age` `[K]` (training steps since last use), `initialized` (0 or 1).
    """

    def __init__(self, dim: int, size: int, decay: float, dead_code_steps: int) -> None:
        super().__init__()
        self.dim, self.size, self.decay, self.dead_code_steps = dim, size, decay, dead_code_steps
        embed = torch.randn(size, dim)
        self.register_buffer("embed", embed)
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("code_age", torch.zeros(size, dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def init_from(self, centroids: torch.Tensor) -> None:
        """Set the codewords (e.g. k-means centroids `[K, C]`) and reset the EMA statistics."""
        if centroids.shape != self.embed.shape:
            raise ValueError(
                f"codebook init expects {tuple(self.embed.shape)}, got {tuple(centroids.shape)}"
            )
        self.embed.copy_(centroids)
        self.embed_sum.copy_(centroids)
        self.cluster_size.fill_(1.0)
        self.code_age.zero_()
        self.initialized.fill_(1)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codeword for each row of `x` `[N, C]`: `[N]`."""
        e = self.embed
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)[None, :]
        return dist.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords of `codes` (any shape) -> `codes.shape + [C]`."""
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA update from vectors `x` `[N, C]` assigned to `codes` `[N]`, then replace dead
        codewords by random vectors of `x`."""
        x = x.float()
        onehot = F.one_hot(codes, self.size).type_as(x)  # (N, K)
        counts = onehot.sum(0)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.size * 1e-5) * n  # Laplace smoothing
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        self.code_age.add_(1)
        self.code_age[counts > 0] = 0
        dead = (self.code_age >= self.dead_code_steps).nonzero().squeeze(1)
        if dead.numel():
            dead = dead[: x.shape[0]]
            pick = torch.randint(0, x.shape[0], (dead.numel(),), device=x.device)
            mean_size = self.cluster_size.mean()
            self.embed[dead] = x[pick]
            self.cluster_size[dead] = mean_size
            self.embed_sum[dead] = x[pick] * mean_size
            self.code_age[dead] = 0


@dataclass
class QuantizerOutput:
    """What `ResidualVQ.forward` returns.

    Attributes:
        quantized: sum of the codewords projected back to D, straight-through `[B, D, T]`.
        codes: `[B, n_q, T]` int64.
        commit_loss: mean over layers of ||residual - codeword.detach()||^2 (scalar).
        layer_outputs: per-layer codewords in codebook space, straight-through,
            `[B, n_q, C, T]` (inputs of the depth-AR loss).
        stats: detached scalars: `stats/codebook_usage_{k}` (share of codewords used in the last
            `dead_code_steps` steps) and `stats/codebook_perplexity_{k}` (of this batch).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    layer_outputs: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)


class ResidualVQ(nn.Module):
    """n_q EMA codebooks applied to successive residuals, with D <-> C projections.

    Args:
        dim: D, the token dimension.
        n_q: number of codebooks.
        codebook_size: K.
        codebook_dim: C (None: D, no projections).
        decay, dead_code_steps, kmeans_iters: see `BaseArgs`.
        prior_path: optional semantic-prior features `[N, C]` for the first codebook.
        warmup_steps: training calls that pass `x` through unquantized (no commitment loss)
            while the last `WARMUP_BUFFER` vectors are kept; the codebooks are then
            initialised by k-means on them. 0: k-means on the first training batch.
    """

    def __init__(
        self,
        dim: int,
        n_q: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        decay: float = 0.99,
        dead_code_steps: int = 200,
        kmeans_iters: int = 10,
        prior_path: str | None = None,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.warmup_steps = warmup_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training calls
        self._buffer: torch.Tensor | None = None  # warm-up vectors (not saved)
        cdim = codebook_dim or dim
        self.dim, self.codebook_dim, self.n_q = dim, cdim, n_q
        self.kmeans_iters, self.prior_path = kmeans_iters, prior_path
        self.project_in = nn.Linear(dim, cdim) if cdim != dim else nn.Identity()
        self.project_out = nn.Linear(cdim, dim) if cdim != dim else nn.Identity()
        self.codebooks = nn.ModuleList(
            EMACodebook(cdim, codebook_size, decay, dead_code_steps) for _ in range(n_q)
        )

    @property
    def codebook_size(self) -> int:
        return self.codebooks[0].size

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Quantize `x` `[B, D, T]`. In training mode the codebooks are initialised on the first
        call and EMA-updated on every call."""
        B, D, T = x.shape
        z = self.project_in(x.transpose(1, 2)).reshape(B * T, self.codebook_dim)  # (B*T, C)
        if self.training:
            self.steps += 1
            if int(self.steps) <= self.warmup_steps:
                return self._warmup(z, B, T)
        residual = z
        quantized = torch.zeros_like(z)
        codes, layers, commit, stats = [], [], [], {}
        for k, cb in enumerate(self.codebooks):
            if self.training and not bool(cb.initialized):
                if self._buffer is not None and k == 0:
                    self._init_from_buffer()
                else:
                    self._init_codebook(k, residual)
            idx = cb.nearest(residual.detach().float())
            q = cb.lookup(idx).type_as(residual)
            commit.append(F.mse_loss(residual, q.detach()))
            if self.training:
                cb.update(residual.detach(), idx)
            layers.append(residual + (q - residual).detach())  # per-layer straight-through
            quantized = quantized + q.detach()
            residual = residual - q.detach()
            codes.append(idx)
            stats.update(_usage_stats(k, cb, idx))
        quantized = z + (quantized - z).detach()  # straight-through: d quantized / d z = 1
        quantized = self.project_out(quantized.reshape(B, T, -1)).transpose(1, 2)
        return QuantizerOutput(
            quantized=quantized,
            codes=torch.stack(codes, 0).reshape(self.n_q, B, T).transpose(0, 1),
            commit_loss=torch.stack(commit).mean(),
            layer_outputs=torch.stack(layers, 0).reshape(self.n_q, B, T, -1).permute(1, 0, 3, 2),
            stats=stats,
        )

    def _warmup(self, z: torch.Tensor, b: int, t: int) -> QuantizerOutput:
        """Unquantized pass of the warm-up: `z` `[b * t, C]` (projected tokens) back through
        `project_out`; the vectors are buffered for the k-means that follows."""
        B, T = b, t  # noqa: N806
        keep = z.detach().float()
        if self._buffer is not None:
            keep = torch.cat([self._buffer, keep])[-WARMUP_BUFFER:]
        self._buffer = keep
        out = self.project_out(z.reshape(B, T, -1)).transpose(1, 2)
        layers = torch.zeros(B, self.n_q, self.codebook_dim, T, device=z.device, dtype=z.dtype)
        layers[:, 0] = z.reshape(B, T, -1).transpose(1, 2)
        return QuantizerOutput(
            quantized=out,
            codes=torch.zeros(B, self.n_q, T, dtype=torch.long, device=z.device),
            commit_loss=F.mse_loss(z, z.detach()),  # 0, but part of the graph like the others
            layer_outputs=layers,
            stats={"stats/quantizer_warmup": 1.0},
        )

    @torch.no_grad()
    def _init_from_buffer(self) -> None:
        """k-means of every codebook on the buffered warm-up vectors (residuals layer by layer)."""
        assert self._buffer is not None
        residual = self._buffer
        for k, cb in enumerate(self.codebooks):
            cb.init_from(kmeans(residual, cb.size, self.kmeans_iters).to(cb.embed.dtype))
            residual = residual - cb.lookup(cb.nearest(residual))
            log.info("codebook %d initialised by k-means on %d warm-up vectors", k, len(residual))
        self._buffer = None

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes `[B, n_q, T]` of `x` `[B, D, T]` (no codebook update)."""
        B, D, T = x.shape
        residual = self.project_in(x.transpose(1, 2)).reshape(B * T, self.codebook_dim).float()
        codes = []
        for cb in self.codebooks:
            idx = cb.nearest(residual)
            residual = residual - cb.lookup(idx)
            codes.append(idx)
        return torch.stack(codes, 0).reshape(self.n_q, B, T).transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized latents `[B, D, T]` of `codes` `[B, n_q', T]` (n_q' <= n_q layers used)."""
        if codes.ndim != 3 or codes.shape[1] > self.n_q:
            raise ValueError(f"codes must be [B, <= {self.n_q}, T], got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        q = sum(cb.lookup(codes[:, k]) for k, cb in enumerate(self.codebooks[: codes.shape[1]]))
        return self.project_out(q).transpose(1, 2)  # (B, T, C) -> (B, D, T)

    @torch.no_grad()
    def _init_codebook(self, k: int, residual: torch.Tensor) -> None:
        data = residual.detach().float()
        source = "first training batch"
        if k == 0 and self.prior_path:
            feats = load_features(self.prior_path)
            if feats.shape[1] != self.codebook_dim:
                raise ValueError(
                    f"{self.prior_path}: features have dim {feats.shape[1]}, the codebooks "
                    f"{self.codebook_dim} (base_args.codebook_dim)"
                )
            data, source = feats.to(residual.device), f"semantic prior {self.prior_path}"
        cb = self.codebooks[k]
        cb.init_from(kmeans(data, cb.size, self.kmeans_iters).to(cb.embed.dtype))
        log.info("codebook %d initialised by k-means on %s (%d vectors)", k, source, len(data))


def _usage_stats(k: int, cb: EMACodebook, idx: torch.Tensor) -> dict[str, float]:
    counts = torch.bincount(idx.detach(), minlength=cb.size).float()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    alive = (cb.code_age < cb.dead_code_steps).float().mean()
    return {
        f"stats/codebook_usage_{k}": float(alive),
        f"stats/codebook_perplexity_{k}": float(math.exp(float(entropy))),
    }
