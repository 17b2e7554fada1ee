"""What the training loop asks of a codec: `TrainingHooks`, mixed into `Codec`.

The loop (`codec.training`) never branches on a codec's name; it asks these questions instead:
which config a training run builds (`training_args`, `for_training`, `decoder_stage_args`),
which parameters a stage trains (`trainable_parameters`, `decoder_parameters`), what a latent
cache may hold (`cached_frontend`), which window a batch draws from (`training_windows`), and how
a run starts from a checkpoint (`load_start_state`, `load_stage1`). The defaults fit a codec
that trains every parameter (EnCodec: stage 1 a plain autoencoder, stage 2 quantized, stage 3
its decoder on its own codes). `forward(wav, window, stage)` returns a `TrainOutput`.

Stages: 1 the autoencoder; 2 the bottleneck on the frozen encoder; 3 the decoder on the codec's
own tokens, encoder and quantizer frozen (so every code it ever wrote stays valid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self

import torch
from torch import nn

from codec.checkpoint import load_state_strict
from codec.schema import ConfigError

STAGES = (1, 2, 3)


@dataclass
class TrainOutput:
    """What a trainable codec's `forward(wav, window, stage)` returns.

    Attributes:
        recon: reconstructed waveform `[B, 1, N]` (same N as the input).
        losses: unweighted auxiliary losses by namespaced key (`"loss/commit"`, `"loss/mae"`,
            `"loss/ar"`); the trainer weights them with the config's lambdas.
        codes: codes `[B, n_q, T]` or None (stage 1 has no quantizer in the path).
        stats: detached scalars to log (`"stats/codebook_usage_0"`, ...).
    """

    recon: torch.Tensor
    losses: dict[str, torch.Tensor]
    codes: torch.Tensor | None = None
    stats: dict[str, float] | None = None


class FrameFrontend(Protocol):
    """A frozen front end between the waveform and the frames a codec compresses
    (ALMTokenizer's EnCodec autoencoder): what training needs of it.

    Attributes:
        hop_length: waveform samples per frame.
    """

    hop_length: int

    def patchify(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, 1, N]` -> frames `[B, d, ceil(N / hop)]`."""
        ...

    def weights_hash(self) -> str:
        """A short hash of its weights (the key of latent caches)."""
        ...


class TrainingHooks:
    """The training side of a codec (see the module docstring); mixed into `Codec`, whose
    `name`, `state_dict` and `parameters` it uses."""

    name: str

    @classmethod
    def training_args(
        cls, preset: str | None, base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """The `from_config` dict for the training config's `model:` section, validated.

        Default: `base_args` is the whole config, `preset` is ignored, `mae_args` must be
        empty. Raises ConfigError with keys relative to the section (`base_args.n_q: ...`).
        """
        if mae_args:
            raise ConfigError(f"mae_args: must be empty for model.type {cls.name}")
        return dict(base_args)

    @classmethod
    def check_training(
        cls, config: dict[str, Any], stage: int, stage1_checkpoint: str | None
    ) -> None:
        """Refuse a training setup this codec cannot run (ConfigError, keys relative to the
        `model:` section); `stage1_checkpoint` is the folder stage 2 starts from, if any."""

    @classmethod
    def for_training(
        cls, config: dict[str, Any], stage: int, zero_weight_losses: frozenset[str]
    ) -> Self:
        """An untrained model to train in `stage` (default: `from_config`). Backends that stand
        on pretrained parts load them here; `zero_weight_losses` (short names such as "mae")
        lets them leave out training-only branches whose loss has weight 0."""
        return cls.from_config(config)

    @classmethod
    def decoder_stage_args(
        cls, saved: dict[str, Any], base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """The `from_config` dict of the decoder stage (3): the trained model's config
        (`saved`, its config.json `model`) with the training config's `base_args` merged over
        it (default: a flat config; `mae_args` must be empty)."""
        if mae_args:
            raise ConfigError(f"mae_args: must be empty for model.type {cls.name}")
        return {**saved, **base_args}

    def training_windows(self) -> tuple[int, int] | None:
        """(low, high): the range a training batch draws its window from; None for a codec
        without a window."""
        return None

    def trainable_parameters(self, stage: int) -> list[nn.Parameter]:
        """Freeze what `stage` does not train and return the parameters it optimises.

        Stage 3 (the decoder stage) trains `decoder_parameters()` alone: the encoder and the
        quantizer stay frozen, so every code the codec ever wrote stays valid.

        Raises:
            ConfigError: the codec does not train in `stage` (the message says why).
        """
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {stage}")
        if stage == 3:
            params = self.decoder_parameters()
            self.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            return params
        return [p for p in self.parameters() if p.requires_grad]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything after the quantizer (what stage 3 trains on the codec's own tokens).

        Raises:
            ConfigError: the codec has no decoder stage.
        """
        raise ConfigError(f"{self.name} has no decoder stage (stage 3)")

    def cached_frontend(self, stage: int) -> FrameFrontend | None:
        """The frozen part before the quantizer whose frames a latent cache may hold in
        `stage` (None: nothing is cached). Default: the frame front end in stages 2 and 3."""
        return self.frame_frontend() if stage in (2, 3) else None

    def load_start_state(
        self, state: dict[str, torch.Tensor], where: str, config: dict[str, Any] | None = None
    ) -> list[str]:
        """Load the weights a training run starts from (`training.start_checkpoint`); returns
        the names of tensors this model did not take from the file as they are (initialised
        itself, or re-indexed). `config`: the checkpoint's config.json `model` section, when
        known. Default: strict, nothing initialised (CheckpointError naming `where` on a
        mismatch)."""
        load_state_strict(self, state, where)
        return []

    def stage1_state_keys(self) -> list[str]:
        """State-dict keys that stage 2 takes over from a stage-1 checkpoint (default: all)."""
        return list(self.state_dict())

    @torch.no_grad()
    def load_stage1(self, source: nn.Module, where: str) -> int:
        """Copy the `stage1_state_keys` of `source` (a stage-1 `Codec` read from `where`) into
        this model; returns the number of tensors copied.

        Raises:
            ValueError: `source` is another codec or its state does not match (names `where`).
        """
        if source.name != self.name:
            raise ValueError(f"{where} holds a {source.name!r} model, not {self.name!r}")
        src, own = source.state_dict(), self.state_dict()
        keys = self.stage1_state_keys()
        missing = [k for k in keys if k not in src]
        shapes = [k for k in keys if k in src and src[k].shape != own[k].shape]
        if missing or shapes:
            raise ValueError(
                f"the stage-1 state in {where} does not match this model's config "
                f"(missing {missing[:3]}, shape mismatch {shapes[:3]})"
            )
        for k in keys:
            own[k].copy_(src[k])
        return len(keys)

    def frame_frontend(self) -> FrameFrontend | None:
        """The frozen front end whose frames the codec compresses (None: the codec works on
        the waveform itself). Stage 2 may cache its frames and fit frame statistics on them."""
        return None

    def needs_frame_statistics(self) -> bool:
        """Whether the frame statistics (`set_frame_statistics`) are still unset."""
        return False

    def set_frame_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel statistics `[d]` of the front end's frames."""
        raise NotImplementedError(f"{type(self).__name__} has no frame statistics")

    def relative_frame_error(self, wav: torch.Tensor, window: int | None) -> torch.Tensor | None:
        """Per clip `[B]`: ||z_hat - z||^2 / ||z||^2 of the frames `z` of `wav` `[B, 1, N]`
        rebuilt through the codes; None for a codec without a frame front end."""
        return None
