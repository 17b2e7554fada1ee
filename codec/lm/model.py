"""The token language model: a decoder-only transformer over code frames `[B, n_q, T]`.

Two standard multi-codebook schemes share one interface (`TokenLM`), chosen by `scheme`:

- "delay" (MusicGen): codebook k shifted by k frames (`codec.lm.patterns`); one embedding
  table per codebook, summed per step; one transformer over S = T + n_q - 1 steps; one output
  head per codebook. Every step predicts n_q codes at once.

      codes [B, n_q, T] -> delay -> shift right (pad id first) -> sum_k emb_k -> transformer
        -> head_k -> logits per step [B, n_q, S, K] -> undelay -> [B, n_q, T, K]

- "depth" (RQ-Transformer / UniAudio): a temporal transformer over frames, then a small depth
  transformer over the n_q codes of each frame (`codec.lm.depth`).

Both return logits aligned with the codes, `logits[b, k, t]` = the distribution of
`codes[b, k, t]` given what the scheme lets it see, so training, scoring and the tests do not
depend on the scheme. The pad id K (one past the codebook) is the begin-of-sequence input and
the padding after a clip's end; targets equal to it are not scored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from codec.lm.patterns import delay, num_steps, undelay
from codec.lm.record import TokenizerRecord
from codec.lm.transformer import CausalTransformer, KVCache, init_weights
from codec.schema import ConfigError

Sampler = Callable[[torch.Tensor], torch.Tensor]  # logits [B, K] -> codes [B]
MAX_DIM = 8192
MAX_LAYERS = 128


@dataclass
class LMModelConfig:
    """`model:` the size and scheme of the token LM (the same for every codec).

    Attributes:
        scheme: "delay" (MusicGen) or "depth" (temporal + depth transformer).
        dim, n_layers, n_heads, mlp_ratio: the (temporal) transformer.
        dropout: on embeddings, attention and residual branches (small datasets memorise fast).
        positions: "rope" (rotary) or "learned" absolute positions.
        depth_dim, depth_layers, depth_heads: the depth transformer ("depth" only).
    """

    scheme: Literal["delay", "depth"] = "delay"
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    positions: Literal["rope", "learned"] = "rope"
    depth_dim: int = 128
    depth_layers: int = 2
    depth_heads: int = 4

    def validate(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "depth_dim", "depth_layers", "depth_heads"):
            v, top = getattr(self, name), MAX_DIM if name.endswith("dim") else MAX_LAYERS
            _require(0 < v <= top, name, f"must be in [1, {top}], got {v}")
        for key, heads in (("dim", self.n_heads), ("depth_dim", self.depth_heads)):
            d = getattr(self, key)
            _require(
                d % heads == 0 and (d // heads) % 2 == 0,
                key,
                f"{d} must split into {heads} heads of even size",
            )
        _require(0 < self.mlp_ratio <= 16, "mlp_ratio", f"must be in (0, 16], got {self.mlp_ratio}")
        _require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenShape:
    """What the tokens look like: `n_q` codebooks of `codebook_size` entries, and the context
    in frames (the config's seconds times the shards' frame rate)."""

    n_q: int
    codebook_size: int
    context_frames: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


class TokenLM(nn.Module, ABC):
    """The interface of both schemes.

    Attributes:
        config: the architecture; shape: the tokens; pad_id: K.
        tokenizer: the `TokenizerRecord` of the shards it was trained on (set by the trainer
            and the loader; None for a bare model).
        checkpoint_hash, checkpoint_meta: of the folder `load_lm` read ("unsaved", {} else).
    """

    scheme: str = ""

    def __init__(self, config: LMModelConfig, shape: TokenShape) -> None:
        super().__init__()
        self.config, self.shape = config, shape
        self.pad_id = shape.codebook_size
        self.tokenizer: TokenizerRecord | None = None
        self.checkpoint_hash = "unsaved"
        self.checkpoint_meta: dict[str, Any] = {}

    @property
    def n_q(self) -> int:
        return self.shape.n_q

    @property
    def codebook_size(self) -> int:
        return self.shape.codebook_size

    @property
    def context_frames(self) -> int:
        return self.shape.context_frames

    @abstractmethod
    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `[B, n_q, T]` (pad id K after a clip's end) -> logits `[B, n_q, T, K]`."""

    @abstractmethod
    def continue_codes(
        self, prompt: torch.Tensor, num_frames: int, sample: Sampler
    ) -> torch.Tensor:
        """Prompt `[B, n_q, T]` -> `[B, n_q, T + num_frames]`, drawing each new code with
        `sample(logits [B, K]) -> [B]` (inputs are checked by `codec.lm.generate`)."""

    def _embed_sum(self, tables: nn.ModuleList, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[B, n_q, S]` -> the sum of each codebook's embedding `[B, S, D]`."""
        return sum(tables[k](tokens[:, k]) for k in range(self.n_q))  # type: ignore[return-value]


class DelayLM(TokenLM):
    """MusicGen's delay pattern (see the module docstring)."""

    scheme = "delay"

    def __init__(self, config: LMModelConfig, shape: TokenShape) -> None:
        super().__init__(config, shape)
        d, k = config.dim, shape.codebook_size
        self.emb = nn.ModuleList(nn.Embedding(k + 1, d) for _ in range(shape.n_q))
        self.transformer = CausalTransformer(
            d,
            config.n_layers,
            config.n_heads,
            config.mlp_ratio,
            config.dropout,
            num_steps(shape.context_frames, shape.n_q),
            config.positions,
        )
        self.heads = nn.ModuleList(nn.Linear(d, k, bias=False) for _ in range(shape.n_q))
        self.emb.apply(init_weights)
        self.heads.apply(init_weights)

    def _step_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden `[B, S, D]` -> logits per step `[B, n_q, S, K]`."""
        return torch.stack([head(h) for head in self.heads], dim=1)

    def step_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The transformer on delayed, right-shifted inputs `[B, n_q, S]` -> `[B, n_q, S, K]`:
        the logits at step s see the inputs of steps 0 ... s only."""
        return self._step_logits(self.transformer(self._embed_sum(self.emb, inputs)))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        delayed = delay(codes, self.pad_id)  # [B, n_q, S]
        start = torch.full_like(delayed[..., :1], self.pad_id)
        inputs = torch.cat([start, delayed[..., :-1]], dim=-1)  # step s sees delayed[< s]
        return undelay(self.step_logits(inputs), time_dim=2)

    @torch.no_grad()
    def continue_codes(
        self, prompt: torch.Tensor, num_frames: int, sample: Sampler
    ) -> torch.Tensor:
        b, n_q, t = prompt.shape
        frames = t + num_frames
        steps = num_steps(frames, n_q)
        delayed = prompt.new_full((b, n_q, steps), self.pad_id)
        delayed[..., : num_steps(t, n_q)] = delay(prompt, self.pad_id)
        cache = KVCache()
        # steps 0 ... t - 1 hold only prompt codes (or pads): one pass over the first t + 1 inputs
        start = torch.full_like(delayed[..., :1], self.pad_id)
        h = self.transformer(self._embed_sum(self.emb, torch.cat([start, delayed[..., :t]], -1)),
                             cache)[:, -1:]  # fmt: skip
        for s in range(t, steps):
            logits = self._step_logits(h)[:, :, 0]  # [B, n_q, K]: the codes of step s
            for k in range(n_q):
                f = s - k  # the frame codebook k holds at step s
                if t <= f < frames:
                    delayed[:, k, s] = sample(logits[:, k])
                # f < t: a prompt code, already in place; f < 0 or f >= frames: the pad id
            if s + 1 < steps:
                h = self.transformer(self._embed_sum(self.emb, delayed[..., s : s + 1]), cache)
        return undelay(delayed)


def token_nll(logits: torch.Tensor, codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Negative log-likelihood in nats `[B, n_q, T]` of codes `[B, n_q, T]` under logits
    `[B, n_q, T, K]` (float32); 0 where the code is the pad id."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    target = codes.clamp(max=logits.shape[-1] - 1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return nll.masked_fill(codes == pad_id, 0.0)
