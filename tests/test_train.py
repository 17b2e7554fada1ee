"""The training loop on a generated Good-sounds fixture with tiny real models (CPU-small).

Stage 1 is the shared autoencoder (a tiny EnCodec model); ALMTokenizer's stage 2 stands on it
frozen (`model.base_args.frontend_checkpoint`), with and without the latent cache. Also the
EnCodec baseline, a short overfit, kill-and-resume equivalence, atomic checkpoints, lambda-0
skipping and the TensorBoard output.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from codec.models.registry import load_codec
from codec.training import state as S
from codec.training.config import ConfigError
from codec.training.discriminators import MultiMelDiscriminator
from codec.training.loop import Trainer, train
from codec.training.model_setup import build_model
from tests.fixtures import make_goodsounds
from tests.train_configs import TINY_ENCODEC, alm_stage2, tiny_config


def tb_tags(writer_dir: Path) -> dict[str, list[str]]:
    ea = EventAccumulator(str(writer_dir), size_guidance={"scalars": 0, "audio": 0, "images": 0})
    ea.Reload()
    return ea.Tags()


def split_state(model, prefix: str = "frontend.") -> tuple[dict, dict]:
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    front = {k: v for k, v in sd.items() if k.startswith(prefix)}
    back = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    return front, back


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gs") / "good-sounds"
    make_goodsounds(root, seconds=0.5)
    return root


@pytest.fixture(scope="module")
def stage1(data, tmp_path_factory):
    """One stage-1 step of the autoencoder; returns (config, result, initial weights)."""
    out = tmp_path_factory.mktemp("stage1")
    cfg = tiny_config(data, out, "training.eval_freq=1")
    torch.manual_seed(cfg.training.seed)  # the trainer seeds the same way before building
    init = build_model(cfg)
    return cfg, train(cfg, command="pytest stage1"), init


def test_stage1_one_step(stage1):
    cfg, result, init = stage1
    ckpt = Path(cfg.training.checkpoint_dir)
    assert result.step == 1 and result.final_dir == ckpt / "final"
    assert S.is_complete(ckpt / "latest") and (ckpt / "best" / "model.safetensors").is_file()
    model = load_codec(result.final_dir)
    meta = model.checkpoint_meta
    assert meta["step"] == 1 and meta["stage"] == 1 and meta["command"] == "pytest stage1"
    assert meta["hours"] >= 0 and "cpu" in meta["hardware"]
    # stage 1 trains the autoencoder; its RVQ is not in the path
    q0, ae0 = split_state(init, "quantizer.")
    q1, ae1 = split_state(model, "quantizer.")
    assert same(q0, q1) and not same(ae0, ae1)
    state = S.load_state_file(ckpt / "latest" / S.TRAIN_STATE_NAME)
    assert state["step"] == 1 and state["stage"] == 1 and len(state["rng"]) == 1
    tags = tb_tags(Path(cfg.training.writer_dir))
    for key in ("loss/mel", "loss/time", "loss/adv", "loss/feat", "loss/disc", "eval/si_sdr",
                "eval/mel_distance"):  # fmt: skip
        assert key in tags["scalars"], key
    assert {"audio/clip0/original", "audio/clip0/recon"} <= set(tags["audio"])
    # one log-mel image per clip and reconstruction, on a shared scale
    assert {"spectrogram/clip0/original", "spectrogram/clip0/recon"} <= set(tags["images"])


def test_stage2_one_step(stage1, data, tmp_path):
    cfg1, res1, _ = stage1
    cfg = tiny_config(data, tmp_path, *alm_stage2(res1.final_dir), "training.eval_freq=1")
    result = train(cfg)
    ae = load_codec(res1.final_dir).state_dict()
    torch.manual_seed(0)
    _, back_init = split_state(build_model(cfg))
    model = load_codec(result.final_dir)
    front2, back2 = split_state(model)
    # the frozen autoencoder's encoder / decoder, exactly
    assert same({k[len("frontend.") :]: v for k, v in front2.items()},
                {k: v for k, v in ae.items() if not k.startswith("quantizer.")})  # fmt: skip
    assert model.config.base_args.frontend_checkpoint == str(res1.final_dir)
    assert bool(model.standardizer.ready)  # statistics from training crops
    changed = [k for k in back2 if not torch.equal(back2[k], back_init[k])]
    assert any(k.startswith("encoder.") for k in changed)
    tags = tb_tags(tmp_path / "tb")
    for key in ("loss/commit", "loss/mae", "loss/ar", "loss/adv", "eval/mel_distance_w3",
                "eval/si_sdr_w10", "eval/pitch_kept_w6", "eval/latent_rel_w3", "eval/score",
                "stats/latent_rel"):  # fmt: skip
        assert key in tags["scalars"], key
    assert {f"audio/clip0/w{w}" for w in (3, 6, 10)} <= set(tags["audio"])


def test_lambda_zero_skips_losses(stage1, data, tmp_path, monkeypatch):
    _, res1, _ = stage1
    calls = []
    orig = MultiMelDiscriminator.forward
    monkeypatch.setattr(
        MultiMelDiscriminator, "forward", lambda self, x: calls.append(1) or orig(self, x)
    )
    cfg = tiny_config(
        data,
        tmp_path,
        *alm_stage2(res1.final_dir),
        "training.lambdas={adv: 0, feat: 0, mae: 0, ar: 0, time: 0}",
    )
    seen = {}
    result = train(cfg, on_step=lambda step, s: seen.update(s))
    assert calls == []  # the discriminators never ran
    assert "loss/mel" in seen and "loss/commit" in seen
    skipped = {"loss/adv", "loss/feat", "loss/disc", "loss/mae", "loss/ar", "loss/time"}
    assert not skipped & set(seen)
    model = load_codec(result.final_dir)
    assert model.mae is None and model.depth_ar is None  # branches not even built


def test_encodec_baseline_one_step(data, tmp_path):
    cfg = tiny_config(
        data,
        tmp_path,
        "model.type=encodec",
        "model.mae_args={}",
        "training.stage=2",
        f"model.base_args={TINY_ENCODEC}",
    )
    seen = {}
    result = train(cfg, on_step=lambda step, s: seen.update(s))
    assert result.step == 1
    assert type(load_codec(result.final_dir)).__name__ == "EnCodecCodec"
    assert {"loss/commit", "loss/mel", "loss/adv"} <= set(seen)


def test_tiny_model_overfits(data, tmp_path):
    """Mel loss on two fixed clips falls by at least half within a short run."""
    cfg = tiny_config(
        data,
        tmp_path,
        "dataloader.train_subset_size=2",
        "training.max_steps=120",
        "training.num_epochs=1000",
        "training.lambdas={adv: 0, feat: 0}",
        "training.lr_generator=1e-2",
        "training.eval_freq=1000",
        "dataloader.nsecs=0.3",
    )
    mel = []
    train(cfg, on_step=lambda step, s: mel.append(s["loss/mel"]))
    assert len(mel) == 120
    first, last = sum(mel[:3]) / 3, sum(mel[-10:]) / 10
    assert last <= 0.5 * first, (first, last)


class KilledError(Exception):
    pass


def kill_at(n: int):
    def hook(step: int, scalars: dict) -> None:
        if step == n:
            raise KilledError

    return hook


def test_kill_and_resume_matches_uninterrupted(stage1, data, tmp_path):
    """Stage 2 with discriminators, MAE masks, k-means and per-step windows: a run killed at
    step 5 and resumed from its step-3 checkpoint ends exactly where an uninterrupted run does."""
    _, res1, _ = stage1
    common = (
        *alm_stage2(res1.final_dir),
        "training.max_steps=6", "training.checkpoint_freq=3", "training.eval_freq=2",
        "training.discriminator_train_freq=2", "training.warmup_steps=2",
        "training.lr_decay=0.9",
    )  # fmt: skip
    full = train(tiny_config(data, tmp_path / "a", *common))

    cfg_b = tiny_config(data, tmp_path / "b", *common)
    with pytest.raises(KilledError):
        train(cfg_b, on_step=kill_at(5))
    latest = tmp_path / "b" / "ckpt" / "latest"
    assert S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"] == 3
    assert not (tmp_path / "b" / "ckpt" / "final").exists()
    resumed = train(cfg_b, resume=True)

    assert full.step == resumed.step == 6
    a, b = load_codec(full.final_dir), load_codec(resumed.final_dir)
    assert same(a.state_dict(), b.state_dict())
    sa = S.load_state_file(tmp_path / "a" / "ckpt" / "latest" / S.TRAIN_STATE_NAME)
    sb = S.load_state_file(latest / S.TRAIN_STATE_NAME)
    assert sa["step"] == sb["step"] == 6
    for k, v in sa["optimizer_d"]["state"].items():
        assert torch.equal(v["exp_avg"], sb["optimizer_d"]["state"][k]["exp_avg"])
    assert sa["scheduler_g"]["last_epoch"] == sb["scheduler_g"]["last_epoch"] == 6
    assert math.isclose(sa["best_mel_distance"], sb["best_mel_distance"])


def test_checkpoint_write_is_atomic(stage1, tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint; a crash between the two renames is
    recovered on resume."""
    cfg1, res1, _ = stage1
    src = Path(cfg1.training.checkpoint_dir) / "latest"
    folder = tmp_path / "ckpt" / "latest"
    shutil.copytree(src, folder)
    model = load_codec(src)
    disc = MultiMelDiscriminator(cfg1.discriminator)

    def broken(path, state):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(S, "save_state_file", broken)
    with pytest.raises(OSError, match="disk full"):
        S.save_training_checkpoint(folder, model, disc, {"step": 99}, {"step": 99})
    assert S.is_complete(folder) and S.load_state_file(folder / S.TRAIN_STATE_NAME)["step"] == 1
    assert sorted(p.name for p in folder.parent.iterdir()) == ["latest"]  # no leftovers

    folder.rename(folder.with_name(".latest.old"))  # killed between the renames
    assert S.is_complete(S.recover(folder))
    assert load_codec(folder).checkpoint_meta["step"] == 1


def test_resume_from_checkpoint_dir(stage1, data, tmp_path):
    """--resume with no checkpoint starts fresh; with one it continues its step count; a
    model-only folder as start_checkpoint only initialises the weights."""
    cfg1, res1, _ = stage1
    cfg = tiny_config(data, tmp_path, "training.max_steps=2")
    trainer = Trainer(cfg, resume=True)
    assert trainer.step == 0
    shutil.copytree(Path(cfg1.training.checkpoint_dir) / "latest", tmp_path / "ckpt" / "latest")
    assert Trainer(cfg, resume=True).step == 1
    warm = tiny_config(data, tmp_path, f"training.start_checkpoint={res1.final_dir}")
    t = Trainer(warm)
    assert t.step == 0 and same(t.model.state_dict(), load_codec(res1.final_dir).state_dict())
    (tmp_path / "ckpt" / "latest" / S.TRAIN_STATE_NAME).write_bytes(b"\x00" * 20)
    with pytest.raises(ConfigError, match=r"^training\.checkpoint_dir: .*train_state"):
        Trainer(cfg, resume=True)


def test_max_minutes_stops_and_writes_final(data, tmp_path):
    cfg = tiny_config(data, tmp_path, "training.max_steps=1000", "training.max_minutes=1e-6")
    result = train(cfg)
    assert result.step == 1 and load_codec(result.final_dir).checkpoint_meta["step"] == 1


def test_stage2_latent_cache_built_once_and_used(stage1, data, tmp_path, monkeypatch):
    """The first stage-2 run caches the frozen encoder's latents (keyed by its weights), every
    step then reads frames from it; a second run reuses the cache without encoding."""
    from codec.training import latent_cache as LC

    _, res1, _ = stage1
    over = (*alm_stage2(res1.final_dir), f"training.latent_cache={tmp_path / 'cache'}",
            "training.latent_cache_crops=2", "training.max_steps=2",
            "model.base_args.quantizer_warmup_steps=1")  # fmt: skip
    built = []
    orig = LC.build_latent_cache
    monkeypatch.setattr(LC, "build_latent_cache", lambda *a, **k: built.append(1) or orig(*a, **k))
    seen = {}
    train(tiny_config(data, tmp_path / "a", *over), on_step=lambda step, s: seen.update(s))
    (folder,) = (tmp_path / "cache").iterdir()
    assert built == [1] and LC.is_complete(folder)
    wav, frames = LC.load_latent_cache(folder)
    assert frames.shape[1] == 16 and wav.shape[-1] == frames.shape[-1] * 320
    assert "loss/commit" in seen and "loss/mel" in seen and "grad_norm/stft" not in seen
    assert "stats/codebook_perplexity_0" in seen  # quantizing again after the warm-up step
    trainer = Trainer(tiny_config(data, tmp_path / "b", *over))
    assert built == [1]  # reused
    mean, std = LC.frame_statistics(frames)
    torch.testing.assert_close(trainer.model.standardizer.mean, mean)
    batch = next(iter(trainer.loaders.epoch_loader(0)))
    assert isinstance(batch, list | tuple) and batch[1].shape[1:] == (16, 30)  # 0.4 s at 75 Hz


def test_discriminator_warms_up_alone_before_the_adversarial_terms(data, tmp_path):
    """training.disc_warmup_steps: the discriminator steps (and reports its margin) from the
    first step; the generator's adv / feat terms join only after the warm-up."""
    cfg = tiny_config(data, tmp_path, "training.max_steps=4", "training.disc_warmup_steps=2")
    per_step: dict[int, set[str]] = {}
    train(cfg, on_step=lambda step, s: per_step.setdefault(step, set(s)))
    for step in (1, 2):  # on_step counts from 1: steps 0 and 1 are the warm-up
        assert {"loss/disc", "stats/disc_margin"} <= per_step[step]
        assert not {"loss/adv", "loss/feat"} & per_step[step]
    for step in (3, 4):
        assert {"loss/disc", "loss/adv", "loss/feat"} <= per_step[step]
