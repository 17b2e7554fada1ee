"""Tiny training configurations shared by the training tests (a helper module, no tests):
the stage-1 autoencoder (a tiny EnCodec) on a generated Good-sounds fixture, and the overrides
for ALMTokenizer's stage 2 on it."""

from __future__ import annotations

from pathlib import Path

from codec.training.config import TrainConfig, apply_overrides

TINY_ALM = {
    "dim": 32, "n_heads": 2, "n_layers": 1, "decoder_n_layers": 1,
    "ffn_dim": 64, "n_codebooks": 2, "codebook_size": 16, "codebook_dim": 8, "kmeans_iters": 2,
    "ar_layers": 1, "ar_dim": 16, "ar_n_heads": 2,
}  # fmt: skip
TINY_MAE = {"dim": 16, "n_heads": 2, "n_layers": 1}
TINY_ENCODEC = {
    "dimension": 16, "n_filters": 4, "lstm": 0, "n_q": 4, "bins": 16,
    "target_bandwidths": [0.3, 0.6, 1.2], "bandwidth": 0.6, "train_bandwidths": [0.3, 1.2],
    "kmeans_iters": 2,
}  # fmt: skip


def tiny_raw(data: Path, out: Path) -> dict:
    """A config dict for the tiny stage-1 autoencoder (EnCodec) on the fixture (two small
    discriminators); `alm_stage2` gives the overrides for ALMTokenizer's stage 2 on it."""
    return {
        "model": {"type": "encodec", "base_args": dict(TINY_ENCODEC), "mae_args": {}},
        "discriminator": {"n_fft": [256, 512], "hop_lengths": [64, 128],
                          "win_lengths": [256, 512], "n_mels": 32, "filters": 4,
                          "max_filters": 8, "dilations": [1, 2]},
        "dataloader": {"dataset": "goodsounds", "dataset_path": str(data), "batch_size": 2,
                       "nsecs": 0.4, "test_subset_size": 2},
        "training": {"max_steps": 1, "checkpoint_freq": 1000, "eval_freq": 1000, "log_freq": 1,
                     "eval_batches": 1, "audio_clips": 1, "writer_dir": str(out / "tb"),
                     "checkpoint_dir": str(out / "ckpt"), "device": "cpu", "seed": 0},
    }  # fmt: skip


def alm_stage2(autoencoder: Path) -> tuple[str, ...]:
    """Overrides: a tiny ALMTokenizer's stage 2 on the frozen autoencoder folder."""
    base = {**TINY_ALM, "frontend_checkpoint": str(autoencoder)}
    return (
        "model.type=almtokenizer", "model.preset=demo", f"model.base_args={base}",
        f"model.mae_args={TINY_MAE}", "training.stage=2",
    )  # fmt: skip


def tiny_config(data: Path, out: Path, *overrides: str) -> TrainConfig:
    return TrainConfig.from_dict(apply_overrides(tiny_raw(data, out), list(overrides)))
