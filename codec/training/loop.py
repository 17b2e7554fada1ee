"""Train ALMTokenizer (or the EnCodec baseline) with one loop: `python -m codec.training`.

    python -m codec.training --config config.yaml [--resume] [key=value ...]
    torchrun --nproc_per_node=2 -m codec.training --config config.yaml

Each step draws a window size w (same on every rank, a function of seed and step), runs the
codec's training forward (`TrainOutput`), adds the weighted losses (`training.lambdas`; a lambda
of 0 skips that loss), updates the discriminators every `discriminator_train_freq` steps from
`disc_start_step` on, and periodically evaluates, logs to TensorBoard and checkpoints
(`checkpoint_dir/latest`, `best`, `final`). See `codec.training.config` for every key.

Exit status: 0 done; 2 a bad config or checkpoint; 1 an I/O error such as a full disk (one
`error:` line naming the folder; the previous checkpoint stays intact); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from codec.checkpoint import CheckpointError, load_state_strict, read_config, read_weights
from codec.models.trainable import TrainOutput
from codec.training import distributed as D
from codec.training import losses as L
from codec.training.balancer import LossBalancer, output_grad_norms
from codec.training.config import LOSS_KEYS, ConfigError, TrainConfig
from codec.training.data import build_loaders
from codec.training.discriminators import MultiMelDiscriminator
from codec.training.evaluation import evaluate
from codec.training.logger import TrainLogger
from codec.training.model_setup import (
    build_model,
    load_frontend,
    prepare_stage2,
    trainable_parameters,
)
from codec.training.state import (
    DISC_NAME,
    TRAIN_STATE_NAME,
    gathered_rng_states,
    is_complete,
    load_state_file,
    read_state_tensors,
    recover,
    remove_stale_staging,
    save_training_checkpoint,
    set_rng_state,
)

log = logging.getLogger("codec.training.loop")
StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What `train` returns: the last step, the final folder (None if stopped early) and the
    last logged scalars."""

    step: int
    final_dir: Path | None
    scalars: dict[str, float]


class _LRSchedule:
    """Linear warm-up then exponential decay per step (a picklable-free, JSON-able object)."""

    def __init__(self, warmup_steps: int, decay: float) -> None:
        self.warmup_steps, self.decay = warmup_steps, decay

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.decay**step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def hardware_string(dist: D.DistInfo) -> str:
    if dist.device.type == "cuda":
        name = torch.cuda.get_device_name(dist.device)
    else:
        name = (
            f"{platform.processor() or platform.machine()} cpu, {torch.get_num_threads()} threads"
        )
    return f"{dist.world_size}x {name}"


class Trainer:
    """One training run: model, discriminators, optimisers, data, logging and checkpoints."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, command: str | None = None) -> None:
        self.cfg, self.t = cfg, cfg.training
        # "python -m codec.training ...": argv[0] is this file's absolute path, a machine path
        # that must not end up in a checkpoint's meta
        self.command = command or " ".join(["python -m codec.training", *sys.argv[1:]])
        if self.t.threads is not None:
            torch.set_num_threads(self.t.threads)
        self.dist = D.setup(self.t.device)
        if self.t.balancer and self.dist.distributed:
            raise ConfigError(
                "training.balancer: not supported under torchrun/DDP yet (its per-loss "
                "gradients run DDP's backward hooks); set it false for multi-process runs"
            )
        self.device = self.dist.device
        seed_everything(self.t.seed + self.dist.rank)
        self.amp = (self.t.amp and self.device.type == "cuda") or (
            self.t.amp_cpu and self.device.type == "cpu"
        )

        self.model = build_model(cfg).to(self.device)
        if self.t.stage == 2 and self.t.stage1_checkpoint is not None:
            load_frontend(self.model, self.t.stage1_checkpoint)
        self.window_range = self.model.training_windows()  # None: the codec has no window
        params = trainable_parameters(self.model, cfg)
        self.gen_params = params
        self.disc = MultiMelDiscriminator(cfg.discriminator).to(self.device)
        betas = tuple(self.t.betas)
        self.opt_g = torch.optim.AdamW(
            params, lr=self.t.lr_generator, betas=betas, weight_decay=self.t.weight_decay
        )
        self.opt_d = torch.optim.AdamW(
            self.disc.parameters(),
            lr=self.t.lr_discriminator,
            betas=betas,
            weight_decay=self.t.weight_decay,
        )
        sched = _LRSchedule(self.t.warmup_steps, self.t.lr_decay)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, sched)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, sched)
        self.loaders = build_loaders(cfg, self.dist.rank, self.dist.world_size)
        self.loaders = prepare_stage2(self.model, cfg, self.loaders, self.dist)

        self.step, self.hours_before, self.best = 0, 0.0, math.inf
        self.balancer = LossBalancer(self.t.balancer_decay)
        self._start_key = "training.start_checkpoint"
        start = self._start_folder(resume)
        if start is not None:
            self._load(start)
        self.ddp_model: nn.Module = self.model
        self.ddp_disc: nn.Module = self.disc
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=self.t.find_unused_parameters
            )
            self.ddp_disc = DistributedDataParallel(self.disc, device_ids=ids)
        self.logger = TrainLogger(self.t.writer_dir, enabled=self.dist.is_main)
        self.started = time.time()

    # --- properties ----------------------------------------------------------------------------
    @property
    def lambdas(self):
        return self.t.lambdas

    def uses_disc(self, step: int) -> bool:
        """The discriminator trains from `disc_start_step`, unless both adversarial lambdas
        are 0."""
        return step >= self.t.disc_start_step and (self.lambdas.adv > 0 or self.lambdas.feat > 0)

    def uses_adv(self, step: int) -> bool:
        """The generator's adversarial terms are on `disc_warmup_steps` after the
        discriminator started."""
        return self.uses_disc(step) and step >= self.t.disc_start_step + self.t.disc_warmup_steps

    def window(self, step: int) -> int | None:
        """w ~ U[window_min, window_max], a function of (seed, step): identical on every rank
        and after a resume."""
        if self.window_range is None:
            return None
        return random.Random(self.t.seed * 1_000_003 + step).randint(*self.window_range)

    @property
    def hours(self) -> float:
        return self.hours_before + (time.time() - self.started) / 3600

    def autocast(self):
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- one step ------------------------------------------------------------------------------
    def train_step(
        self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor], step: int
    ) -> dict[str, float]:
        """One generator update (and a discriminator update when due); returns the scalars.
        `batch` is `wav [B, 1, N]`, or `(wav, frames [B, d, T])` from a latent cache."""
        wav, frames = batch if isinstance(batch, tuple | list) else (batch, None)
        wav = wav.to(self.device, non_blocking=True)
        extra = {} if frames is None else {"frames": frames.to(self.device, non_blocking=True)}
        lam, out_scalars = self.lambdas, {}
        with self.autocast():
            out: TrainOutput = self.ddp_model(
                wav, window=self.window(step), stage=self.t.stage, **extra
            )
        recon = out.recon.float()
        if recon.shape != wav.shape:
            raise RuntimeError(f"model returned recon {tuple(recon.shape)} for {tuple(wav.shape)}")

        if self.uses_disc(step) and step % self.t.discriminator_train_freq == 0:
            out_scalars["loss/disc"], out_scalars["stats/disc_margin"] = self._disc_step(
                wav, recon.detach()
            )
        adversarial = self.uses_adv(step)

        losses: dict[str, torch.Tensor] = {}
        if lam.time > 0:
            losses["loss/time"] = L.time_loss(recon, wav)
        if lam.mel > 0:
            losses["loss/mel"] = L.mel_loss(recon, wav, self.t.mel_scales)
        if lam.stft > 0:
            losses["loss/stft"] = L.mrstft_loss(recon, wav, preemphasis=self.t.stft_preemphasis)
        if adversarial:
            # The unwrapped ensemble with frozen weights: gradients reach the generator only.
            self.disc.requires_grad_(False)
            with self.autocast():
                fake = self.disc(recon)
                real = None
                if lam.feat > 0:
                    with torch.no_grad():
                        real = self.disc(wav)
            if lam.adv > 0:
                losses["loss/adv"] = L.generator_adv_loss(fake, self.cfg.discriminator.loss)
            if real is not None:
                losses["loss/feat"] = L.feature_matching_loss(real, fake)
        for key, value in out.losses.items():
            if key.split("/", 1)[-1] not in LOSS_KEYS:
                raise RuntimeError(f"the model returned {key!r}; training.lambdas has no weight")
            if lam.weight(key) > 0:
                losses[key] = value.float()
        total = sum(lam.weight(k) * v for k, v in losses.items())
        if not isinstance(total, torch.Tensor):
            raise RuntimeError("every loss has lambda 0: nothing to train")
        if not torch.isfinite(total):
            raise FloatingPointError(f"step {step}: non-finite loss {self._fmt(losses)}")

        # Not under DDP: autograd.grad through DDP's output runs its backward hooks, and the
        # real backward then all-reduces differently (measured: 2 ranks no longer match 1).
        log_norms = (step + 1) % self.t.log_freq == 0 and not self.dist.distributed
        if log_norms and recon.requires_grad and not self.t.balancer:
            out_scalars.update(output_grad_norms(losses, recon, lam.weight))
        self.opt_g.zero_grad(set_to_none=True)
        if self.t.balancer and recon.requires_grad:
            out_scalars.update(
                self.balancer.backward(losses, recon, lam.weight, plain=self.t.unbalanced)
            )
        else:
            total.backward()
        self.disc.requires_grad_(True)
        if self.t.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.gen_params, self.t.grad_clip)
            out_scalars["stats/grad_norm"] = float(norm)
        self.opt_g.step()
        self.sched_g.step()
        with warnings.catch_warnings():  # the D schedule follows the global step, trained or not
            warnings.simplefilter("ignore", UserWarning)
            self.sched_d.step()

        out_scalars.update({k: float(v.detach()) for k, v in losses.items()})
        out_scalars["loss/total"] = float(total.detach())
        out_scalars.update(out.stats or {})
        return out_scalars

    def _disc_step(self, wav: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
        """One discriminator update on real and generated audio (one forward for DDP); returns
        its loss and its margin (mean logit on real minus on generated audio, averaged over
        the ensemble: 0 while it cannot tell them apart)."""
        with self.autocast():
            outs = self.ddp_disc(torch.cat([wav, fake], dim=0))
        b = wav.shape[0]
        real = [type(o)(o.logits[:b], [f[:b] for f in o.features]) for o in outs]
        gen = [type(o)(o.logits[b:], [f[b:] for f in o.features]) for o in outs]
        loss = L.discriminator_loss(real, gen, self.cfg.discriminator.loss)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        margin = sum(float((r.logits.mean() - g.logits.mean()).detach()) for r, g in zip(real, gen))
        return float(loss.detach()), margin / len(real)

    @staticmethod
    def _fmt(values: dict[str, Any]) -> str:
        return ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())

    # --- the loop ------------------------------------------------------------------------------
    def total_steps(self) -> int:
        n = self.t.num_epochs * self.loaders.steps_per_epoch
        return min(n, self.t.max_steps) if self.t.max_steps is not None else n

    def out_of_time(self) -> bool:
        over = (
            self.t.max_minutes is not None and time.time() - self.started > 60 * self.t.max_minutes
        )
        return D.broadcast_flag(over, self.device) if self.dist.distributed else over

    def run(self, on_step: StepHook | None = None) -> TrainResult:
        """Train until num_epochs / max_steps / max_minutes; write `final/`. `on_step(step,
        scalars)` is called after every step (tests use it to interrupt a run)."""
        total, spe = self.total_steps(), self.loaders.steps_per_epoch
        bar = None
        if self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc=f"stage {self.t.stage}", unit="step")
        running: dict[str, float] = {}
        last: dict[str, float] = {}
        self.model.train()
        self.disc.train()
        stopped_early = False
        try:
            while self.step < total and not stopped_early:
                epoch, skip = divmod(self.step, spe)
                for batch in self.loaders.epoch_loader(epoch, skip):
                    t0 = time.time()
                    scalars = self.train_step(batch, self.step)
                    self.step += 1
                    scalars["time/step_seconds"] = time.time() - t0
                    for k, v in scalars.items():
                        running[k] = v if k not in running else 0.9 * running[k] + 0.1 * v
                    if self.step % self.t.log_freq == 0 or self.step == total:
                        last = D.mean_over_ranks(scalars)
                        last["lr/generator"] = self.sched_g.get_last_lr()[0]
                        self.logger.scalars(last, self.step)
                    if bar is not None:
                        bar.update(1)
                        keys = (
                            "loss/mel",
                            "loss/stft",
                            "loss/time",
                            "loss/adv",
                            "loss/commit",
                            "loss/disc",
                        )
                        bar.set_postfix({k[5:]: f"{running[k]:.3f}" for k in keys if k in running})
                    self._periodic(self.step, total)
                    if on_step is not None:
                        on_step(self.step, scalars)
                    if self.step >= total:
                        break
                    if self.out_of_time():
                        stopped_early = True
                        log.info("training.max_minutes reached at step %d", self.step)
                        break
            final = self._finish()
        finally:
            if bar is not None:
                bar.close()
            self.logger.close()
        return TrainResult(step=self.step, final_dir=final, scalars=last)

    def _periodic(self, step: int, total: int) -> None:
        if step % self.t.eval_freq == 0:
            self.evaluate_and_log(step)
        if step % self.t.checkpoint_freq == 0 and step < total:
            self.save(Path(self.t.checkpoint_dir) / "latest")
        if self.t.keep_every and step % self.t.keep_every == 0 and self.dist.is_main:
            # weights only, for selection by a measure outside the trainer (bench.speech_band)
            self._save_model(Path(self.t.checkpoint_dir) / f"step_{step}")

    def _finish(self) -> Path | None:
        """Last eval (if not just done), `latest/` and `final/`."""
        if self.step % self.t.eval_freq != 0:
            self.evaluate_and_log(self.step)
        ckpt = Path(self.t.checkpoint_dir)
        self.save(ckpt / "latest")
        final = ckpt / "final"
        if self.dist.is_main:
            self._save_model(final)
            log.info("wrote %s (step %d)", final, self.step)
        D.barrier()
        return final

    def _save_model(self, folder: Path) -> None:
        """The model alone (no optimiser state) as a loadable model folder, written atomically."""
        with _writing(folder):
            self.model.save_pretrained(folder, meta=self.meta())

    # --- evaluation, checkpoints ---------------------------------------------------------------
    def evaluate_and_log(self, step: int) -> dict[str, float]:
        """Rank 0 scores the held-out clips, logs scalars/audio/figures, updates `best/`."""
        scalars: dict[str, float] = {}
        if self.dist.is_main:
            res = evaluate(
                self.model,
                self.loaders.held_out_loader(),
                self.t.stage,
                self.t.eval_windows,
                self.device,
                max_batches=self.t.eval_batches,
                audio_clips=self.t.audio_clips,
                amp=self.amp,
            )
            scalars = res.scalars
            self.logger.scalars(scalars, step)
            for i, ex in enumerate(res.examples):
                for name, wav in ex.items():
                    self.logger.audio(f"audio/clip{i}/{name}", wav, step)
                self.logger.spectrograms(f"spectrogram/clip{i}", ex, step)
            self.logger.flush()
            # pitch-aware selection (`eval/score`, codec.training.evaluation), else mel distance
            mel = scalars.get("eval/score", scalars.get("eval/mel_distance", math.inf))
            if mel < self.best:
                self.best = mel
                best = Path(self.t.checkpoint_dir) / "best"
                with _writing(best):
                    self.model.save_pretrained(best, meta=self.meta(eval=scalars))
        D.barrier()
        return scalars

    def meta(self, **extra: Any) -> dict[str, Any]:
        """What `config.json`'s meta records about this run."""
        return {
            "step": self.step,
            "stage": self.t.stage,
            "hours": round(self.hours, 4),
            "hardware": hardware_string(self.dist),
            "command": self.command,
            "train_config": self.cfg.to_dict(),
            **extra,
        }

    def save(self, folder: Path) -> None:
        """Rank 0 writes a full training checkpoint (every rank's RNG state included)."""
        rngs = gathered_rng_states(self.dist)
        if self.dist.is_main:
            state = {
                "step": self.step,
                "hours": self.hours,
                "best_mel_distance": self.best,
                "world_size": self.dist.world_size,
                "stage": self.t.stage,
                "optimizer_g": self.opt_g.state_dict(),
                "optimizer_d": self.opt_d.state_dict(),
                "scheduler_g": self.sched_g.state_dict(),
                "scheduler_d": self.sched_d.state_dict(),
                "rng": rngs,
                "balancer": dict(self.balancer.ema),
            }
            with _writing(folder):
                save_training_checkpoint(folder, self.model, self.disc, state, self.meta())
        D.barrier()

    def _start_folder(self, resume: bool) -> Path | None:
        """`--resume`: checkpoint_dir/latest when present; else training.start_checkpoint."""
        if self.dist.is_main:  # a killed run's staging folder is a full checkpoint: reclaim it
            remove_stale_staging(Path(self.t.checkpoint_dir) / "latest")
        if resume:
            latest = recover(Path(self.t.checkpoint_dir) / "latest")
            if is_complete(latest):
                self._start_key = "training.checkpoint_dir"
                return latest
            log.warning("--resume: no checkpoint in %s yet; starting from scratch", latest)
        if self.t.start_checkpoint is not None:
            return Path(self.t.start_checkpoint)
        return None

    def _load(self, folder: Path) -> None:
        """Model weights (any checkpoint folder); with a training state also the discriminator,
        optimisers, schedulers, step and RNG states (a true resume)."""
        key = self._start_key
        try:
            cfg = read_config(folder)
            if cfg["codec"] != self.model.name:
                raise CheckpointError(f"{folder} holds a {cfg['codec']!r} model")
            added = self.model.load_start_state(read_weights(folder), str(folder), cfg["model"])
            if added:
                log.info("%d tensors not taken from %s as they are (e.g. %s)",
                         len(added), folder, added[0])  # fmt: skip
            if not (folder / TRAIN_STATE_NAME).is_file():
                log.info("initialised the model from %s (no training state: step 0)", folder)
                return
            if added:  # its optimiser state is for the checkpoint's tensors, not these
                log.warning("initialised the model from %s; its training state does not fit "
                            "the changed tensors and is not resumed: step 0", folder)  # fmt: skip
                return
            state = load_state_file(folder / TRAIN_STATE_NAME)
            disc_file = folder / DISC_NAME
            load_state_strict(self.disc, read_state_tensors(disc_file), str(disc_file))
        except CheckpointError as e:
            raise ConfigError(f"{key}: {e}") from e
        if state.get("stage") != self.t.stage:
            raise ConfigError(
                f"training.stage: {folder} is a stage-{state.get('stage')} run, not stage "
                f"{self.t.stage}; give a stage-1 folder to stage 2 as training.stage1_checkpoint"
            )
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.sched_g.load_state_dict(state["scheduler_g"])
        self.sched_d.load_state_dict(state["scheduler_d"])
        self.step = int(state["step"])
        self.hours_before = float(state["hours"])
        self.best = float(state["best_mel_distance"])
        self.balancer.ema = {k: float(v) for k, v in state.get("balancer", {}).items()}
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.t.seed + self.dist.rank + self.step)
        log.info("resumed from %s at step %d", folder, self.step)


@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Re-raise an OSError of a checkpoint write (disk full, permissions) naming the folder, with
    its errno kept; the write is atomic, so the previous checkpoint is intact."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, f"cannot write checkpoint {folder}: {e.strerror or e}") from e


def train(
    cfg: TrainConfig,
    resume: bool = False,
    command: str | None = None,
    on_step: StepHook | None = None,
) -> TrainResult:
    """Run a whole training (the programmatic form of `python -m codec.training`)."""
    trainer = Trainer(cfg, resume=resume, command=command)
    try:
        return trainer.run(on_step=on_step)
    finally:
        D.cleanup()
