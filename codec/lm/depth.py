"""The temporal + depth scheme (RQ-Transformer, Lee et al. 2022; UniAudio, Yang et al. 2023).

A temporal transformer runs over frames; a small depth transformer runs, inside each frame,
over its n_q codes, coarse to fine:

    frame inputs: pad frame, codes[:, :, :T-1]   -> sum_k emb_k -> temporal -> h [B, T, D]
    depth inputs per frame t: [proj(h_t), demb_0(c_t^0), ..., demb_{n_q-2}(c_t^{n_q-2})]
        -> depth transformer (causal over the n_q positions) -> head_k at position k
        -> logits [B, n_q, T, K]

So code k of frame t sees every code of frames < t and codes 0 ... k-1 of frame t: the exact
autoregressive factorisation (the delay pattern approximates it at lower cost).
"""

from __future__ import annotations

import torch
from torch import nn

from codec.lm.model import LMModelConfig, Sampler, TokenLM, TokenShape
from codec.lm.transformer import CausalTransformer, KVCache, init_weights


class DepthLM(TokenLM):
    """Temporal transformer over frames + depth transformer over each frame's codebooks."""

    scheme = "depth"

    def __init__(self, config: LMModelConfig, shape: TokenShape) -> None:
        super().__init__(config, shape)
        d, dd, k = config.dim, config.depth_dim, shape.codebook_size
        self.emb = nn.ModuleList(nn.Embedding(k + 1, d) for _ in range(shape.n_q))
        self.temporal = CausalTransformer(
            d,
            config.n_layers,
            config.n_heads,
            config.mlp_ratio,
            config.dropout,
            shape.context_frames,
            config.positions,
        )
        self.to_depth = nn.Linear(d, dd)
        # codebook j's code is the input of depth position j + 1 (the last one is never input)
        self.depth_emb = nn.ModuleList(nn.Embedding(k + 1, dd) for _ in range(shape.n_q - 1))
        self.depth = CausalTransformer(
            dd,
            config.depth_layers,
            config.depth_heads,
            config.mlp_ratio,
            config.dropout,
            shape.n_q,
            "learned",
        )
        self.heads = nn.ModuleList(nn.Linear(dd, k, bias=False) for _ in range(shape.n_q))
        for part in (self.emb, self.to_depth, self.depth_emb, self.heads):
            part.apply(init_weights)

    def _frame_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `[B, n_q, T]` -> temporal inputs `[B, T, D]`: frame t sees frame t - 1."""
        start = torch.full_like(codes[..., :1], self.pad_id)
        return self._embed_sum(self.emb, torch.cat([start, codes[..., :-1]], dim=-1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        b, n_q, t = codes.shape
        h = self.to_depth(self.temporal(self._frame_inputs(codes)))  # [B, T, Dd]
        seq = [h] + [self.depth_emb[j](codes[:, j]) for j in range(n_q - 1)]
        x = torch.stack(seq, dim=2).reshape(b * t, n_q, -1)  # (B*T, n_q, Dd)
        out = self.depth(x).reshape(b, t, n_q, -1)
        return torch.stack([self.heads[k](out[:, :, k]) for k in range(n_q)], dim=1)

    @torch.no_grad()
    def continue_codes(
        self, prompt: torch.Tensor, num_frames: int, sample: Sampler
    ) -> torch.Tensor:
        b, n_q, t = prompt.shape
        frames = [prompt]
        cache = KVCache()
        # inputs of frames 0 ... t (the pad frame, then the prompt) in one pass
        start = torch.full_like(prompt[..., :1], self.pad_id)
        x = self._embed_sum(self.emb, torch.cat([start, prompt], dim=-1))
        h = self.to_depth(self.temporal(x, cache)[:, -1:])  # [B, 1, Dd]: frame t's context
        for f in range(num_frames):
            frame = self._sample_frame(h, sample)  # [B, n_q, 1]
            frames.append(frame)
            if f + 1 < num_frames:
                h = self.to_depth(self.temporal(self._embed_sum(self.emb, frame), cache))
        return torch.cat(frames, dim=-1)

    def _sample_frame(self, h: torch.Tensor, sample: Sampler) -> torch.Tensor:
        """One frame's codes `[B, n_q, 1]`, coarse to fine, from its context `h` `[B, 1, Dd]`."""
        cache = KVCache()
        x, codes = h, []
        for k in range(self.n_q):
            out = self.depth(x, cache)[:, -1]  # [B, Dd]
            code = sample(self.heads[k](out))
            codes.append(code)
            if k + 1 < self.n_q:
                x = self.depth_emb[k](code)[:, None]
        return torch.stack(codes, dim=1)[..., None]
