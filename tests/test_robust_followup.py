"""Follow-up robustness fixes: checkpoint format versions, recovery of interrupted swaps, stale
staging folders, the training CLI's I/O errors, the EnCodec front end's hash-checked loader,
model-size bounds, config edge cases and the app's upload / export limits.

(The main regression tests of these fixes are the former `xfail`s of tests/test_robust_*.py.)
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import codec.checkpoint as ck
from codec.checkpoint import CONFIG_NAME, CheckpointError, load_codec, read_config, save_codec
from codec.config import ConfigError, load_config
from tests.test_robust_checkpoint import tiny_alm, tiny_encodec

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    return int(proc.stdout)


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_format_version_must_be_the_int_1(tmp_path: Path, version) -> None:
    folder = save_codec(tiny_encodec(), tmp_path / "ckpt")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**cfg, "format_version": version}))
    with pytest.raises(CheckpointError, match="format_version"):
        read_config(folder)


def test_interrupted_swap_is_recovered_by_load_and_save(tmp_path: Path) -> None:
    """The state a SIGKILL between save_codec's two renames leaves: only `.ckpt.old-<pid>`.
    load_codec (via read_config) puts it back; save_codec does too and removes dead leftovers
    but never a running process's folders."""
    folder = save_codec(tiny_encodec(), tmp_path / "ckpt", meta={"step": 1})
    os.replace(folder, tmp_path / f".ckpt.old-{dead_pid()}")
    assert load_codec(folder).checkpoint_meta == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    dead, alive = dead_pid(), os.getppid()
    os.replace(folder, tmp_path / f".ckpt.old-{dead}")
    (tmp_path / f".ckpt.tmp-{dead}-abcd1234").mkdir()  # a half-written new folder
    (tmp_path / f".ckpt.old-{alive}").mkdir()  # another process mid-save: not ours to touch
    (tmp_path / f".ckpt.tmp-{alive}-abcd1234").mkdir()
    save_codec(tiny_encodec(), folder, meta={"step": 2})
    assert load_codec(folder).checkpoint_meta == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".ckpt.old-{alive}", f".ckpt.tmp-{alive}-abcd1234", "ckpt"
    ]  # fmt: skip


def test_recover_checkpoint_takes_the_newest_old_folder(tmp_path: Path) -> None:
    older = save_codec(tiny_encodec(), tmp_path / "a", meta={"step": 1})
    newer = save_codec(tiny_encodec(), tmp_path / "b", meta={"step": 2})
    os.utime(older, (time.time() - 60, time.time() - 60))
    os.replace(older, tmp_path / f".ckpt.old-{dead_pid()}")
    os.replace(newer, tmp_path / f".ckpt.old-{dead_pid()}")
    assert ck.recover_checkpoint(tmp_path / "ckpt") == tmp_path / "ckpt"
    assert load_codec(tmp_path / "ckpt").checkpoint_meta == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert ck.recover_checkpoint(tmp_path / "nowhere" / "ckpt") == tmp_path / "nowhere" / "ckpt"


def test_stale_staging_folders_are_removed(tmp_path: Path) -> None:
    from codec.training import state as S

    latest = tmp_path / "latest"
    latest.mkdir()
    dead, alive = dead_pid(), os.getppid()
    names = [f".latest.staging-{dead}", f"..latest.staging-{dead}.tmp-{dead}-x1y2z3w4",
             f".latest.staging-{os.getpid()}", f".latest.staging-{alive}", ".latest.staging-x",
             "notes"]  # fmt: skip
    for n in names:
        (tmp_path / n).mkdir()
    S.recover(latest)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f".latest.staging-{alive}", ".latest.staging-x", "latest", "notes"])


# ------------------------------------------------------------------------------------------------
# training CLI
# ------------------------------------------------------------------------------------------------
def test_train_cli_reports_os_errors_in_one_line(monkeypatch, capsys) -> None:
    import codec.train as T

    def failing(*a, **k):
        raise OSError(errno.EACCES, "Permission denied", "/runs/x/events.out")

    monkeypatch.setattr(T, "load_config", lambda *a, **k: None)
    monkeypatch.setattr(T, "train", failing)
    assert T.main(["--config", "x.yaml"]) == 1
    assert capsys.readouterr().err == "error: /runs/x/events.out: Permission denied\n"


def test_checkpoint_write_error_names_the_folder(tmp_path: Path) -> None:
    import codec.train as T

    with pytest.raises(OSError) as e, T._writing(tmp_path / "latest"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.errno == errno.ENOSPC
    assert (
        e.value.strerror
        == f"cannot write checkpoint {tmp_path / 'latest'}: No space left on device"
    )


# ------------------------------------------------------------------------------------------------
# EnCodec front end and model-size bounds
# ------------------------------------------------------------------------------------------------
def test_encodec_frontend_checks_the_official_hash(tmp_path: Path) -> None:
    from codec.almtokenizer import BaseArgs
    from codec.almtokenizer.frontend_encodec import EncodecFrontend, load_frontend_checkpoint
    from codec.encodec import EnCodecCodec, EnCodecConfig, EnCodecWeightsError

    f = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save(EnCodecCodec(EnCodecConfig()).state_dict(), f)  # right layout, wrong file
    with pytest.raises(EnCodecWeightsError, match="sha256") as e:
        load_frontend_checkpoint(EncodecFrontend(BaseArgs()), str(f))
    assert str(f) in str(e.value)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("base_args", "n_layers", 10**9), ("base_args", "decoder_n_layers", 65),
     ("base_args", "dim", 2**20), ("base_args", "ffn_dim", 10**9),
     ("base_args", "n_codebooks", 10**9), ("base_args", "codebook_size", 2**20),
     ("base_args", "encodec_lstm", 10**9), ("base_args", "encodec_residual_layers", -1),
     ("base_args", "ar_n_heads", 0), ("mae_args", "n_layers", 10**9), ("mae_args", "n_heads", 0)],
)  # fmt: skip
def test_alm_config_bounds_name_the_key(section: str, key: str, value: int) -> None:
    from codec.almtokenizer import ALMConfig, preset

    raw = preset("demo").to_dict()
    raw[section][key] = value
    with pytest.raises(ValueError, match=rf"^{section}\.{key}:"):
        ALMConfig.from_dict(raw)


@pytest.mark.parametrize(
    ("key", "value"),
    [("lstm", 10**9), ("n_residual_layers", 10**9), ("n_q", 65), ("bins", 2**20),
     ("dimension", 2**14), ("n_filters", 2**11), ("ratios", [10**9]), ("ratios", [2] * 17),
     ("decay", float("nan"))],
)  # fmt: skip
def test_encodec_config_bounds_name_the_key(key: str, value) -> None:
    from codec.encodec import EnCodecConfig

    with pytest.raises(ValueError, match=key):
        EnCodecConfig.from_dict({key: value})


def test_config_asking_for_a_bigger_model_is_refused_before_building(tmp_path, monkeypatch):
    """Within the bounds but not what the weights hold (64 layers of width 8192 would allocate
    ~200 GB): load_codec compares the safetensors header with a meta-device build first."""
    from codec.almtokenizer import ALMTokenizer

    folder = save_codec(tiny_alm(), tmp_path / "alm")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg["model"]["base_args"].update(dim=8192, n_heads=64, ffn_dim=32768, n_layers=64)
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    devices = []
    real = ALMTokenizer.from_config.__func__

    def spy(cls, config):
        devices.append(torch.get_default_device().type)
        if devices[-1] != "meta":
            raise AssertionError("built for real before the shapes were compared")
        return real(cls, config)

    monkeypatch.setattr(ALMTokenizer, "from_config", classmethod(spy))
    with pytest.raises(CheckpointError, match="model.safetensors does not match the model config"):
        load_codec(folder)
    assert devices == ["meta"]


# ------------------------------------------------------------------------------------------------
# training config
# ------------------------------------------------------------------------------------------------
def test_recursive_yaml_alias_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "loop.yaml"
    p.write_text("training: &t\n  eval_windows: [*t]\n")
    with pytest.raises(ConfigError, match="loop.yaml"):
        load_config(p, check_paths=False)


def test_valid_seed_and_device_values_pass() -> None:
    for over in (["training.seed=4294967295", "training.device=cuda:1"], ["training.seed=0"]):
        load_config(ROOT / "configs" / "demo.yaml", over, check_paths=False)
    with pytest.raises(ConfigError, match=r"^training\.seed"):
        load_config(ROOT / "configs" / "demo.yaml", ["training.seed=-1"], check_paths=False)


# ------------------------------------------------------------------------------------------------
# app
# ------------------------------------------------------------------------------------------------
def test_export_folders_are_pruned_per_kind(tmp_path: Path) -> None:
    import threading

    from app.state import Studio

    studio = SimpleNamespace(
        config=SimpleNamespace(export_dir=tmp_path / "exports", keep_exports=3),
        export_lock=threading.Lock(),
    )
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "timbre-mine").mkdir()  # not an export folder's name: kept
    made = []
    for i in range(6):
        made.append(Studio.new_export_folder(studio, "timbre"))  # type: ignore[arg-type]
        os.utime(made[-1], (i, i))  # creation order, whatever the clock's resolution
    other = Studio.new_export_folder(studio, "traversal")  # type: ignore[arg-type]
    left = sorted((tmp_path / "exports").iterdir())
    assert left == sorted([*made[-3:], other, tmp_path / "exports" / "timbre-mine"])


def test_app_cli_upload_and_export_flags() -> None:
    from app.cli import build_parser, config_from_args

    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["--no-warmup"]), parser)
    assert (cfg.max_upload_mb, cfg.keep_exports) == (50.0, 20)
    cfg = config_from_args(
        parser.parse_args(["--max-upload-mb", "5", "--keep-exports", "3"]), parser
    )
    assert (cfg.max_upload_mb, cfg.keep_exports) == (5.0, 3)
    for bad in (["--keep-exports", "0"], ["--max-upload-mb", "0"], ["--max-upload-mb", "nan"]):
        with pytest.raises(SystemExit) as e:
            config_from_args(parser.parse_args(bad), parser)
        assert e.value.code == 2
