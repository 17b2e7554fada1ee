"""ALMTokenizer's answers to the training loop (`codec.models.trainable.TrainingHooks`).

- stage 1 trains nothing here: the front end is a frozen EnCodec autoencoder, trained as
  `model.type: encodec`;
- stage 2 trains everything but the front end (query encoder, RVQ, mask-token decoder, MAE
  branch, depth-AR head) through the frozen decoder;
- stage 3 (the decoder stage) trains everything after the RVQ on the model's own tokens: the
  mask tokens, the mask-token decoder, the frame projection and the acoustic decoder; a
  mask-token decoder grown beyond the checkpoint's starts out as the trained one.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Self

import torch
from torch import nn

from codec.checkpoint import load_state_strict
from codec.models.almtokenizer.config import ALMConfig
from codec.models.almtokenizer.config import preset as _preset
from codec.models.trainable import FrameFrontend
from codec.schema import ConfigError

log = logging.getLogger(__name__)
ACOUSTIC_DECODER = "frontend.decoder."


class ALMTrainingHooks:
    """Mixed into `ALMTokenizer` (before `Codec`); uses its `config`, `frontend`,
    `standardizer`, `decoder`, `mask_token` and `frame_out`."""

    # --- parameter groups for the two training stages --------------------------------------
    def frontend_parameters(self) -> list[nn.Parameter]:
        """Parameters of patchify / unpatchify (stage 1)."""
        return list(self.frontend.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the front end's (stage 2)."""
        own = {id(p) for p in self.frontend.parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def freeze_frontend(self) -> None:
        """Stage 2: patchify / unpatchify stop learning (they still pass gradients through)."""
        self.frontend.requires_grad_(False)

    @property
    def frontend_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.frontend.parameters())

    @classmethod
    def training_args(
        cls, preset: str | None, base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """`preset(preset)` with `base_args` and `mae_args` merged over its two sections,
        validated by `ALMConfig.from_dict` (keys `base_args.dim: ...`)."""
        try:
            out = _preset(preset).to_dict() if preset else ALMConfig().to_dict()
        except (ValueError, KeyError) as e:
            raise ConfigError(f"preset: {e}") from e
        out["base_args"].update(base_args)
        out["mae_args"].update(mae_args)
        return ALMConfig.from_dict(out).to_dict()

    @classmethod
    def check_training(
        cls, config: dict[str, Any], stage: int, stage1_checkpoint: str | None
    ) -> None:
        """Stage 2 stands on the frozen autoencoder: a `frontend_checkpoint` or a stage-1
        folder must provide it."""
        frontend = config["base_args"].get("frontend_checkpoint")
        if stage == 2 and stage1_checkpoint is None and frontend is None:
            raise ConfigError(
                "base_args.frontend_checkpoint: stage 2 needs the frozen autoencoder: an "
                "EnCodec checkpoint folder (or training.stage1_checkpoint)"
            )

    @classmethod
    def decoder_stage_args(
        cls, saved: dict[str, Any], base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """The trained model's config with `base_args` / `mae_args` merged over its two
        sections; the front end comes with the start checkpoint's weights, so
        `frontend_checkpoint` is cleared (unless `base_args` sets it)."""
        out = copy.deepcopy(saved)
        out["base_args"]["frontend_checkpoint"] = None
        out["base_args"].update(base_args)
        out["mae_args"].update(mae_args)
        return ALMConfig.from_dict(out).to_dict()

    @classmethod
    def for_training(
        cls, config: dict[str, Any], stage: int, zero_weight_losses: frozenset[str]
    ) -> Self:
        """The frozen autoencoder's architecture and weights from `base_args.frontend_checkpoint`
        (when set); in stage 2 without the MAE branch / depth-AR head when their loss has
        weight 0."""
        from codec.models.almtokenizer.frontend_encodec import (
            load_frontend_checkpoint,
            resolve_frontend_args,
        )

        args = copy.deepcopy(config)
        source = args["base_args"].get("frontend_checkpoint")
        try:
            args["base_args"] = resolve_frontend_args(args["base_args"])
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"base_args.frontend_checkpoint: {e}") from e
        if stage == 2 and "mae" in zero_weight_losses and args["mae_args"]["n_layers"]:
            log.info("training.lambdas.mae is 0: building the model without the MAE branch")
            args["mae_args"]["n_layers"] = 0
        if stage == 2 and "ar" in zero_weight_losses and args["base_args"]["ar_layers"]:
            log.info("training.lambdas.ar is 0: building the model without the depth-AR head")
            args["base_args"]["ar_layers"] = 0
        if stage == 2 and "pitch" in zero_weight_losses and args["base_args"]["pitch_head"]:
            log.info("training.lambdas.pitch is 0: building the model without the pitch head")
            args["base_args"]["pitch_head"] = False
        model = cls.from_config(args)
        if source:
            try:
                load_frontend_checkpoint(model.frontend, source)
            except (OSError, ValueError) as e:
                raise ConfigError(f"base_args.frontend_checkpoint: {e}") from e
        return model

    def training_windows(self) -> tuple[int, int]:
        a = self.config.base_args
        return a.window_min, a.window_max

    def trainable_parameters(self, stage: int) -> list[nn.Parameter]:
        """Stage 2: everything but the frozen front end. Stage 1 trains nothing here."""
        if stage == 1:
            raise ConfigError(
                "stage 1 trains nothing of ALMTokenizer: its front end is a frozen EnCodec "
                "autoencoder; train it as model.type=encodec (stage 1), set "
                "model.base_args.frontend_checkpoint to it and run ALMTokenizer with "
                "training.stage=2"
            )
        if stage == 3:
            return super().trainable_parameters(stage)
        super().trainable_parameters(stage)  # checks the stage
        self.freeze_frontend()
        return [p for p in self.backbone_parameters() if p.requires_grad]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Stage 3: the mask tokens (and the decoder's group-linear path), the mask-token
        decoder, the frame projection and the acoustic decoder (unpatchify): everything after
        the RVQ."""
        return [
            self.mask_token,
            *(self.group_out.parameters() if self.group_out is not None else ()),
            *self.decoder.parameters(),
            *self.frame_out.parameters(),
            *self.frontend.decoder.parameters(),
        ]

    # training-only branches a start checkpoint may lack (stage 2 with the MAE branch, the
    # depth-AR head or the pitch head switched on over a model trained without them): they
    # start fresh
    FRESH_BRANCHES = ("mae.", "depth_ar.", "pitch_head.")
    # zero-initialised paths (base_args.group_linear) over a checkpoint without them: at zero
    # the model computes what the checkpoint did
    ZERO_PATHS = ("group_in.", "group_out.")

    def load_start_state(
        self, state: dict[str, torch.Tensor], where: str, config: dict[str, Any] | None = None
    ) -> list[str]:
        """Strict, except for what a start checkpoint cannot hold yet (`config` is not needed):

        - a mask-token decoder grown beyond the checkpoint's (`base_args.decoder_n_layers`):
          its added blocks come after the trained ones with zero output projections, so each
          is the identity and the grown model starts out as the trained one (the decoder
          stage's larger-decoder runs);
        - a training-only branch the checkpoint has none of (the MAE branch, the depth-AR
          head), switched on for a further stage-2 run: it keeps its fresh initialisation.
          A branch the checkpoint holds loads strictly;
        - the group-linear paths (`base_args.group_linear`) over a checkpoint without them:
          they start at zero, where the model computes what the checkpoint did;
        - a Vocos acoustic decoder (`base_args.acoustic_decoder: vocos`) over a checkpoint with
          the SEANet one: the SEANet tensors are dropped and the Vocos decoder starts untrained
          (the decoder stage trains it).

        Returns the names of the tensors the file did not hold."""
        prefix = "decoder.blocks."
        saved = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
        n_saved = max(saved) + 1 if saved else 0
        own = self.state_dict()
        grown = [
            k for k in own
            if k.startswith(prefix) and int(k[len(prefix) :].split(".")[0]) >= n_saved
            and k not in state
        ]  # fmt: skip
        fresh = [
            k for k in own
            for branch in self.FRESH_BRANCHES
            if k.startswith(branch) and not any(s.startswith(branch) for s in state)
        ]  # fmt: skip
        if not any(s.startswith(self.ZERO_PATHS) for s in state):  # both paths or neither
            fresh += [k for k in own if k.startswith(self.ZERO_PATHS)]
        vocos = self._fresh_vocos(state, own)
        if vocos:  # a SEANet checkpoint under a Vocos acoustic decoder: its decoder is dropped
            state = {k: v for k, v in state.items() if not k.startswith(ACOUSTIC_DECODER)}
            log.info("%s: the Vocos acoustic decoder starts untrained", where)
        added = grown + fresh + vocos
        load_state_strict(self, {**state, **{k: own[k] for k in added}}, where)
        with torch.no_grad():
            for i in range(n_saved, len(self.decoder.blocks)):
                block = self.decoder.blocks[i]
                block.attn.proj.weight.zero_()
                block.mlp[-1].weight.zero_()
                block.mlp[-1].bias.zero_()
        if fresh:
            log.info("%s: %d tensors of new branches or paths start fresh", where, len(fresh))
        return added

    def _fresh_vocos(
        self, state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
    ) -> list[str]:
        """The names in `own` (the model's state) of the Vocos acoustic decoder when `state`
        holds another acoustic decoder (SEANet) and none of them, else []."""
        keys = [k for k in own if k.startswith(ACOUSTIC_DECODER)]
        if self.config.base_args.acoustic_decoder != "vocos" or any(k in state for k in keys):
            return []
        return keys

    def stage1_state_keys(self) -> list[str]:
        """The front end's state."""
        return [k for k in self.state_dict() if k.startswith("frontend.")]

    @torch.no_grad()
    def load_stage1(self, source: nn.Module, where: str) -> int:
        """From a stage-1 ALMTokenizer its front end; from an EnCodec autoencoder its encoder
        and decoder, which become the front end."""
        from codec.models.encodec import EnCodecCodec

        if isinstance(source, EnCodecCodec):
            self.frontend.load_from_encodec(source, where)
            return len(self.frontend.state_dict())
        return super().load_stage1(source, where)

    def frame_frontend(self) -> FrameFrontend:
        return self.frontend

    def needs_frame_statistics(self) -> bool:
        return not bool(self.standardizer.ready)

    def set_frame_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.standardizer.set_stats(mean, std)

    def relative_frame_error(self, wav: torch.Tensor, window: int | None) -> torch.Tensor:
        w = self._window(window)
        return self.frame_error(self.patchify(wav, w), w)
