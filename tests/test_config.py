"""The training config: shipped files validate, every error names its key, overrides are typed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codec.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    load_config,
    resolve_model_args,
)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture
def demo_raw() -> dict:
    return yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())


def error_of(tmp_path: Path, raw: dict, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, raw), overrides)
    return str(e.value)


def test_shipped_configs_validate():
    full = load_config(ROOT / "config.yaml", check_paths=False)  # FSD50K is not on this machine
    assert full.model.type == "almtokenizer" and full.model.preset == "paper"
    d = full.discriminator
    assert len(d.n_fft) == len(d.hop_lengths) == len(d.win_lengths) == len(d.n_mels_list) == 6
    assert full.dataloader.dataset == "fsd50k"
    assert full.training.checkpoint_dir == "work_dirs/almtokenizer_fsd50k/stage1"
    args = resolve_model_args(full.model)
    assert args["base_args"]["n_codebooks"] == 3 and args["base_args"]["codebook_size"] == 2048
    assert (args["base_args"]["window_min"], args["base_args"]["window_max"]) == (2, 10)

    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert demo.model.preset == "demo" and demo.dataloader.dataset_path == "data/demo"
    assert demo.training.device == "cpu"


def test_full_config_names_missing_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"^dataloader\.dataset_path: .*does not exist"):
        load_config(ROOT / "config.yaml", [f"dataloader.dataset_path={tmp_path / 'nope'}"])


def test_roundtrip_to_dict(demo_raw):
    cfg = TrainConfig.from_dict(demo_raw)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_suggests(tmp_path, demo_raw):
    demo_raw["training"]["lambdas"]["mell"] = 1.0
    msg = error_of(tmp_path, demo_raw)
    assert msg == "training.lambdas.mell: unknown key (did you mean 'mel'?)"


def test_unknown_section_and_model_arg(tmp_path, demo_raw):
    assert error_of(tmp_path, {**demo_raw, "trainig": {}}).startswith("trainig: unknown key")
    demo_raw["model"]["base_args"]["dimm"] = 3
    msg = error_of(tmp_path, demo_raw)
    assert msg.startswith("model.base_args") and "base_args.dimm" in msg


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("dataloader.batch_size=big", "dataloader.batch_size: expected int, got str"),
        ("dataloader.batch_size=2.5", "dataloader.batch_size: expected int"),
        ("training.lr_generator=fast", "training.lr_generator: expected float"),
        ("training.amp=1", "training.amp: expected bool"),
        ("training.betas=0.5", "training.betas: expected list"),
        ("discriminator.n_fft=[256, x]", "discriminator.n_fft[1]: expected int"),
        ("discriminator.loss=wgan", "discriminator.loss: expected one of 'hinge', 'lsgan'"),
        ("training.lambdas=3", "training.lambdas: expected a mapping"),
    ],
)
def test_wrong_type_names_key(tmp_path, demo_raw, override, key):
    assert error_of(tmp_path, demo_raw, (override,)).startswith(key)


def test_list_length_mismatch(tmp_path, demo_raw):
    demo_raw["discriminator"]["win_lengths"] = [256, 512]
    msg = error_of(tmp_path, demo_raw)
    assert msg.startswith("discriminator.win_lengths: has 2 entries but n_fft has 3")
    demo_raw["discriminator"]["win_lengths"] = [256, 512, 1024]
    demo_raw["discriminator"]["n_mels"] = [80, 80]
    assert error_of(tmp_path, demo_raw).startswith("discriminator.n_mels: has 2 entries")


def test_value_checks(tmp_path, demo_raw):
    cases = {
        "discriminator.win_lengths=[256, 2048, 1024]": "discriminator.win_lengths[1]",
        "training.stage=4": "training.stage",
        "training.stage=3": "training.start_checkpoint",  # the decoder stage needs a codec
        "training.betas=[0.5]": "training.betas",
        "training.lambdas.mel=-1": "training.lambdas.mel",
        "training.device=tpu": "training.device",
        "training.mel_scales=[[512, 1024, 64]]": "training.mel_scales[0]",
        "model.type=encodec": "model.mae_args",
    }
    encodec = ("model.type=encodec", "model.mae_args={}", "model.base_args={dimensionn: 8}")
    msg = error_of(tmp_path, demo_raw, encodec)
    assert msg == "model.base_args.dimensionn: unknown key (did you mean 'dimension'?)"
    for override, key in cases.items():
        assert error_of(tmp_path, demo_raw, (override,)).startswith(key + ":"), override


def test_missing_paths(tmp_path, demo_raw):
    demo_raw["dataloader"]["dataset_path"] = str(tmp_path / "missing")
    assert error_of(tmp_path, demo_raw).startswith("dataloader.dataset_path:")
    demo_raw["dataloader"]["dataset_path"] = str(tmp_path)
    missing_stage1 = f"training.stage1_checkpoint={tmp_path / 'no_stage1'}"
    msg = error_of(tmp_path, demo_raw, ("training.stage=2", missing_stage1))
    assert msg.startswith("training.stage1_checkpoint:") and "not a checkpoint folder" in msg
    no_autoencoder = (
        "training.stage=2", "training.stage1_checkpoint=null",
        "model.base_args.frontend_checkpoint=null",
    )  # fmt: skip
    msg = error_of(tmp_path, demo_raw, no_autoencoder)
    assert msg.startswith("model.base_args.frontend_checkpoint: stage 2 needs")
    msg = error_of(tmp_path, demo_raw, (f"training.start_checkpoint={tmp_path / 'x'}",))
    assert msg.startswith("training.start_checkpoint:")


def test_overrides_are_yaml_typed(tmp_path, demo_raw):
    cfg = load_config(
        write(tmp_path, demo_raw),
        [
            "training.num_epochs=3",
            "training.lr_generator=1e-3",  # YAML 1.1 reads this as a string; still a float
            "training.betas=[0.4, 0.8]",
            "training.max_minutes=1.5",
            "training.grad_clip=null",
            "model.base_args.dim=128",
            "training.lambdas.adv=0",
        ],
    )
    t = cfg.training
    assert t.num_epochs == 3 and isinstance(t.num_epochs, int)
    assert t.lr_generator == pytest.approx(1e-3) and isinstance(t.lr_generator, float)
    assert t.betas == [0.4, 0.8] and t.max_minutes == 1.5 and t.grad_clip is None
    assert cfg.model.base_args["dim"] == 128 and t.lambdas.adv == 0.0
    assert resolve_model_args(cfg.model)["base_args"]["dim"] == 128


def test_override_errors():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["training.num_epochs"])
    with pytest.raises(ConfigError, match=r"^training\.num_epochs: is not a section"):
        apply_overrides({"training": {"num_epochs": 3}}, ["training.num_epochs.x=1"])


def test_placeholders(tmp_path, demo_raw):
    # configs/demo.yaml is ALMTokenizer's stage 2 (its stage 1 is the shared autoencoder's)
    cfg = load_config(write(tmp_path, demo_raw), ["training.writer_dir=runs/{model}/s{stage}"])
    assert cfg.training.writer_dir == "runs/almtokenizer/s2"
    assert cfg.training.checkpoint_dir == "work_dirs/demo/almtokenizer_stage2"


def test_cli_reports_config_error(tmp_path, demo_raw):
    demo_raw["training"]["lambdas"]["mell"] = 1.0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "codec.training", "--config", str(write(tmp_path, demo_raw))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "training.lambdas.mell: unknown key (did you mean 'mel'?)" in proc.stderr
