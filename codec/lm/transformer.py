"""A causal pre-norm transformer with rotary or learned positions and a key/value cache.

    x [B, S, D] -> (+ learned positions) -> n_layers x [LN -> causal attention (RoPE) -> +x,
                                                       LN -> MLP (GELU) -> +x] -> LN -> [B, S, D]

The cache lets generation feed one step at a time: `KVCache` holds every layer's keys and
values `[B, H, S_past, D/H]`, and a call with `cache` attends to them and appends its own. The
attention mask is causal over the positions `offset ... offset + S - 1` of the call, so a
prefill of S steps and S single steps give the same outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class KVCache:
    """Keys and values of the steps seen so far, per layer: `[B, H, S_past, D/H]` each."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Steps already cached (0 before the first call)."""
        k = self.keys[0] if self.keys else None
        return 0 if k is None else int(k.shape[2])


def rope_tables(max_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, ...]:
    """cos and sin `[max_len, head_dim / 2]` of the rotary position embedding (Su et al.)."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of `x` `[B, H, S, Dh]` by the angles of `cos`/`sin` `[S, Dh/2]`."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)
    return out.flatten(-2)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; `rope` rotates queries and keys by their position."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads or (dim // n_heads) % 2:
            raise ValueError(f"dim {dim} must split into {n_heads} heads of even size")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """`x` `[B, S, D]` (positions offset ... offset + S - 1, offset = cached steps) ->
        (`[B, S, D]`, this layer's keys and values including the past)."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, S, hs)
        offset = 0 if past is None else past[0].shape[2]
        if rope is not None:
            cos, sin = (t[offset : offset + s] for t in rope)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        drop = self.dropout if self.training else 0.0
        if offset == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:  # query i (position offset + i) sees keys 0 ... offset + i
            mask = torch.ones(s, offset + s, dtype=torch.bool, device=x.device).tril(offset)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).reshape(b, s, d)
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-norm attention + MLP with residuals."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.norm1(x), rope, past)
        x = x + a
        return x + self.mlp(self.norm2(x)), kv


class CausalTransformer(nn.Module):
    """A stack of `Block`s over `[B, S, D]` with positions up to `max_len`.

    Args:
        dim, n_layers, n_heads, mlp_ratio, dropout: the usual sizes.
        max_len: the longest sequence (positions 0 ... max_len - 1).
        positions: "rope" (rotary, relative) or "learned" (an absolute table).
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float,
        dropout: float,
        max_len: int,
        positions: str = "rope",
    ) -> None:
        super().__init__()
        if positions not in ("rope", "learned"):
            raise ValueError(f"positions must be 'rope' or 'learned', got {positions!r}")
        self.max_len, self.positions = max_len, positions
        self.blocks = nn.ModuleList(
            Block(dim, n_heads, mlp_ratio, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.pos_emb = nn.Embedding(max_len, dim) if positions == "learned" else None
        cos, sin = rope_tables(max_len, dim // n_heads)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual outputs
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """`x` `[B, S, D]` -> `[B, S, D]`; with `cache`, `x` continues the cached steps (and
        the cache grows by S)."""
        offset = cache.length if cache is not None else 0
        s = x.shape[1]
        if offset + s > self.max_len:
            raise ValueError(f"{offset + s} steps exceed the model's context of {self.max_len}")
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(offset, offset + s, device=x.device))[None]
        rope = (self.rope_cos, self.rope_sin) if self.positions == "rope" else None
        x = self.drop(x)
        if cache is not None and not cache.keys:
            cache.keys = [None] * len(self.blocks)
            cache.values = [None] * len(self.blocks)
        for i, block in enumerate(self.blocks):
            past = None
            if cache is not None and cache.keys[i] is not None:
                past = (cache.keys[i], cache.values[i])  # type: ignore[assignment]
            x, (k, v) = block(x, rope, past)
            if cache is not None:
                cache.keys[i], cache.values[i] = k, v
        return self.norm(x)


def init_weights(module: nn.Module) -> None:
    """nanoGPT's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
