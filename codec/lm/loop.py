"""Train a token LM on code shards: `python -m codec.lm --config configs/lm_alm_w3.yaml`.

    python -m codec.lm --config FILE [--resume] [key=value ...]
    torchrun --nproc_per_node=2 -m codec.lm --config FILE          (gloo on CPU, nccl on CUDA)

Each step draws `batch_size` crops of `context` frames (`CropDataset`: the clip order depends
on (seed, epoch), each crop's offset on (seed, epoch, item)), minimises the cross-entropy of
every real code (the pad id is skipped) with AdamW, linear warm-up and cosine decay, and every
`eval_freq` steps scores the held-out chunks (rank 0): bits per token per codebook, bits per
second, the baselines' bits per second for reference, the same measures on training chunks (a
growing gap is memorisation), and an image of one chunk's per-code bits. Checkpoints:
`checkpoint_dir/latest` (with the training state: a resume takes the very steps an
uninterrupted run takes), `best` (lowest held-out bits per second) and `final`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from codec.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, load_state_strict
from codec.checkpoint import read_weights as read_model_weights
from codec.lm.config import ConfigError, LMConfig
from codec.lm.data import CropDataset, load_shards, sample_chunks
from codec.lm.loaders import build_lm, read_lm_config, save_lm
from codec.lm.model import TokenShape, token_nll
from codec.lm.record import TokenizerMismatchError, TokenizerRecord
from codec.lm.scoring import LN2, baseline_results, lm_bits, share_removed, token_bits
from codec.tokenizer.shards import ShardError
from codec.training import distributed as D
from codec.training.data import ResumableSampler
from codec.training.logger import TrainLogger
from codec.training.state import (
    TRAIN_STATE_NAME,
    gathered_rng_states,
    load_state_file,
    recover,
    remove_stale_staging,
    set_rng_state,
)

log = logging.getLogger("codec.lm.loop")
StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class LMTrainResult:
    """The last step, the `final/` folder (None when stopped before one) and last scalars."""

    step: int
    final_dir: Path | None
    scalars: dict[str, float]


class CosineSchedule:
    """Linear warm-up, then cosine decay to `min_ratio` at `total` steps (a JSON-able object,
    so LambdaLR's state dict stores it)."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's split: decay matrices and embeddings, not norms and biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class LMTrainer:
    """One LM training run: data, model, optimiser, logging and checkpoints."""

    def __init__(self, cfg: LMConfig, resume: bool = False, command: str | None = None) -> None:
        self.cfg, self.t = cfg, cfg.training
        self.command = command or " ".join(["python -m codec.lm", *sys.argv[1:]])
        if self.t.threads is not None:
            torch.set_num_threads(self.t.threads)
        self.dist = D.setup(self.t.device)
        self.device = self.dist.device
        self.amp = (self.t.amp and self.device.type == "cuda") or (
            self.t.amp_cpu and self.device.type == "cpu"
        )
        d = cfg.data
        try:
            self.data = load_shards(
                d.shards, d.held_out_fraction, d.group_by, d.split_seed, d.train_fraction
            )
        except ShardError as e:
            raise ConfigError(f"data.shards: {e}") from e
        rec = self.data.record
        self.context = d.context_frames(rec.frame_rate)
        seed_everything(self.t.seed)  # the same initial weights on every rank
        self.model = build_lm(cfg.model, TokenShape(rec.n_q, rec.codebook_size, self.context))
        self.model.tokenizer = rec
        self.model.to(self.device)
        seed_everything(self.t.seed + self.dist.rank)  # dropout differs across ranks
        self.opt = torch.optim.AdamW(
            param_groups(self.model, self.t.weight_decay), lr=self.t.lr, betas=tuple(self.t.betas)
        )
        sched = CosineSchedule(self.t.warmup_steps, self.t.max_steps, self.t.min_lr_ratio)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, sched)
        self.train_set = CropDataset(self.data.train, self.context, self.model.pad_id, self.t.seed)
        self.sampler = ResumableSampler(
            len(self.train_set), self.dist.rank, self.dist.world_size, self.t.seed
        )
        if self.sampler.per_rank < self.t.batch_size:
            raise ConfigError(
                f"training.batch_size: {self.t.batch_size} is larger than the "
                f"{self.sampler.per_rank} training crops per process per epoch"
            )
        self.eval_sets = self._eval_sets()
        self.step, self.hours_before, self.best = 0, 0.0, math.inf
        start = self._start_folder(resume)
        if start is not None:
            self._load(start)
        self.ddp: nn.Module = self.model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.logger = TrainLogger(self.t.writer_dir, enabled=self.dist.is_main)
        self.baselines = baseline_results(self.data) if self.dist.is_main else []
        self.started = time.time()

    def _eval_sets(self) -> dict[str, list[torch.Tensor]]:
        """Fixed held-out and training chunks, `eval_chunks` of each, from seeded clips (the
        training chunks at most as many as the held-out ones)."""
        d, pad = self.cfg.data, self.model.pad_id
        held = sample_chunks(self.data.held_out, self.context, pad, d.eval_chunks, d.split_seed)
        train = sample_chunks(self.data.train, self.context, pad, len(held), d.split_seed)
        return {"eval": held, "train": train}

    @property
    def hours(self) -> float:
        return self.hours_before + (time.time() - self.started) / 3600

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.per_rank // self.t.batch_size

    def epoch_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        """This rank's batches of `epoch` after the first `skip_batches` (no global RNG use)."""
        self.sampler.set_epoch(epoch, skip_batches * self.t.batch_size)
        self.train_set.set_epoch(epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.t.batch_size,
            sampler=self.sampler,
            num_workers=self.cfg.data.num_workers,
            drop_last=True,
            generator=torch.Generator().manual_seed(self.t.seed * 7919 + epoch),
        )

    # --- one step ------------------------------------------------------------------------------
    def train_step(self, codes: torch.Tensor) -> dict[str, float]:
        """One AdamW update on crops `[B, n_q, context]`; returns the step's scalars."""
        codes = codes.to(self.device, non_blocking=True)
        with self.autocast():
            logits = self.ddp(codes)
        nll = token_nll(logits, codes, self.model.pad_id)  # [B, n_q, T] nats, float32
        count = (codes != self.model.pad_id).sum().clamp(min=1)
        loss = nll.sum() / count
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: non-finite loss {float(loss)}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        ce = float(loss.detach())
        scalars = {"loss/ce": ce, "train/bits_per_token": ce / LN2}
        if self.t.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.t.grad_clip)
            scalars["stats/grad_norm"] = float(norm)
        self.opt.step()
        self.sched.step()
        return scalars

    # --- the loop ------------------------------------------------------------------------------
    def out_of_time(self) -> bool:
        m = self.t.max_minutes
        over = m is not None and time.time() - self.started > 60 * m
        return D.broadcast_flag(over, self.device)

    def run(self, on_step: StepHook | None = None) -> LMTrainResult:
        """Train until `max_steps` (or `max_minutes`); write `final/`. `on_step(step, scalars)`
        runs after every step (tests interrupt a run with it)."""
        total, spe = self.t.max_steps, self.steps_per_epoch
        bar = None
        if self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc="token lm", unit="step")
        last: dict[str, float] = {}
        self.model.train()
        try:
            stop = False
            while self.step < total and not stop:
                epoch, skip = divmod(self.step, spe)
                for codes in self.epoch_loader(epoch, skip):
                    t0 = time.time()
                    scalars = self.train_step(codes)
                    self.step += 1
                    scalars["time/step_seconds"] = time.time() - t0
                    if self.step % self.t.log_freq == 0 or self.step == total:
                        last = D.mean_over_ranks(scalars)
                        last["lr"] = self.sched.get_last_lr()[0]
                        self.logger.scalars(last, self.step)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(bits=f"{scalars['train/bits_per_token']:.3f}")
                    if self.step % self.t.eval_freq == 0:
                        self.evaluate_and_log(self.step)
                    if self.step % self.t.checkpoint_freq == 0 and self.step < total:
                        self.save(Path(self.t.checkpoint_dir) / "latest")
                    if on_step is not None:
                        on_step(self.step, scalars)
                    if self.step >= total or self.out_of_time():
                        stop = True
                        break
            final = self._finish()
        finally:
            if bar is not None:
                bar.close()
            self.logger.close()
        return LMTrainResult(self.step, final, last)

    def _finish(self) -> Path:
        if self.step % self.t.eval_freq != 0:
            self.evaluate_and_log(self.step)
        ckpt = Path(self.t.checkpoint_dir)
        self.save(ckpt / "latest")
        if self.dist.is_main:
            save_lm(self.model, ckpt / "final", self.meta())
            log.info("wrote %s (step %d)", ckpt / "final", self.step)
        D.barrier()
        return ckpt / "final"

    # --- evaluation, checkpoints ---------------------------------------------------------------
    def evaluate_and_log(self, step: int) -> dict[str, float]:
        """Rank 0: held-out and training bits, the baselines, a per-code bits image; `best/`."""
        scalars: dict[str, float] = {}
        if self.dist.is_main:
            rec, raw = self.data.record, self.data.record.raw_bitrate
            args = (rec.frame_rate, self.t.batch_size, self.device, self.amp)
            held, train = (lm_bits(self.model, self.eval_sets[k], *args) for k in ("eval", "train"))
            scalars = {
                "eval/bits_per_token": held.mean_bits_per_token,
                "eval/bits_per_second": held.bits_per_second,
                "eval/share_removed": share_removed(held.bits_per_second, raw),
                "eval/train_bits_per_second": train.bits_per_second,
                "eval/gap_bits_per_second": held.bits_per_second - train.bits_per_second,
            }
            for q, b in enumerate(held.bits_per_token):
                scalars[f"eval/bits_per_token/cb{q}"] = b
            for b in self.baselines:
                scalars[f"eval/baseline/{b.name.split()[0]}_bits_per_second"] = b.bits_per_second
            self.logger.scalars(scalars, step)
            self._log_image(step)
            self.logger.flush()
            if held.bits_per_second < self.best:
                self.best = held.bits_per_second
                save_lm(self.model, Path(self.t.checkpoint_dir) / "best", self.meta(eval=scalars))
            self.model.train()
        D.barrier()
        return scalars

    def _log_image(self, step: int) -> None:
        """Bits of every code of the first held-out chunk, 0 (black) to log2 K (white), each
        codebook a band of 8 rows (finest at the bottom)."""
        if self.logger.writer is None:
            return
        chunk = self.eval_sets["eval"][0][None].to(self.device)
        self.model.eval()
        bits = token_bits(self.model, chunk, self.amp)[0].float().cpu()  # [n_q, T]
        img = (bits / math.log2(self.model.codebook_size)).clamp(0, 1).repeat_interleave(8, 0)
        self.logger.writer.add_image("eval/code_bits", img[None], step)

    def meta(self, **extra: Any) -> dict[str, Any]:
        return {
            "step": self.step,
            "hours": round(self.hours, 4),
            "command": self.command,
            "world_size": self.dist.world_size,
            "train_config": self.cfg.to_dict(),
            **extra,
        }

    def save(self, folder: Path) -> None:
        """Rank 0 writes a training checkpoint (every rank's RNG state included)."""
        rngs = gathered_rng_states(self.dist)
        if self.dist.is_main:
            state = {
                "step": self.step,
                "hours": self.hours,
                "best_bits_per_second": self.best,
                "world_size": self.dist.world_size,
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "rng": rngs,
            }
            save_lm(self.model, folder, self.meta(), train_state=state)
        D.barrier()

    def _start_folder(self, resume: bool) -> Path | None:
        latest = Path(self.t.checkpoint_dir) / "latest"
        if self.dist.is_main:
            remove_stale_staging(latest)
        if not resume:
            return None
        recover(latest)
        if all((latest / n).is_file() for n in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME)):
            return latest
        log.warning("--resume: no checkpoint in %s yet; starting from scratch", latest)
        return None

    def _load(self, folder: Path) -> None:
        """Weights, optimiser, schedule, step and RNG states of a training checkpoint."""
        try:
            cfg = read_lm_config(folder)
            TokenizerRecord.from_dict(cfg["tokenizer"]).check_same(
                self.data.record, "the shards of data.shards"
            )
            if cfg["model"] != self.cfg.model.to_dict():
                raise CheckpointError(f"{folder} holds another model config: {cfg['model']}")
            load_state_strict(self.model, read_model_weights(folder), str(folder / WEIGHTS_NAME))
            state = load_state_file(folder / TRAIN_STATE_NAME)
        except (CheckpointError, TokenizerMismatchError) as e:
            raise ConfigError(f"training.checkpoint_dir: {e}") from e
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        # the config's schedule wins over the stored one (a resume may extend max_steps)
        self.sched.lr_lambdas[0].__dict__.update(
            CosineSchedule(self.t.warmup_steps, self.t.max_steps, self.t.min_lr_ratio).__dict__
        )
        self.step = int(state["step"])
        self.hours_before = float(state["hours"])
        self.best = float(state["best_bits_per_second"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.t.seed + self.dist.rank + self.step)
        log.info("resumed from %s at step %d", folder, self.step)


def train(
    cfg: LMConfig, resume: bool = False, command: str | None = None, on_step: StepHook | None = None
) -> LMTrainResult:
    """A whole LM training run (the programmatic form of `python -m codec.lm`)."""
    try:
        trainer = LMTrainer(cfg, resume=resume, command=command)
        return trainer.run(on_step=on_step)
    finally:
        D.cleanup()
