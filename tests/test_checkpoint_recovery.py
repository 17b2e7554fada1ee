"""Checkpoint folders under failure: format versions, interrupted swaps put back by the next
load or save (`codec.checkpoint.recover_checkpoint`, `codec.training.state.recover`), stale
staging folders of killed runs, the one atomic swap (`swap_folder`) and the errors a full disk
or a denied write give (naming the folder, in one line from the training CLI)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import codec.checkpoint as ck
from codec.checkpoint import CONFIG_NAME, CheckpointError, read_config, save_codec, swap_folder
from codec.models.registry import load_codec
from tests.tiny_models import untrained_tiny_encodec as tiny_encodec


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    return int(proc.stdout)


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


def test_swap_folder_replaces_and_puts_back(tmp_path: Path, monkeypatch) -> None:
    """The one atomic swap: the new folder replaces the old one; if the second rename fails,
    the previous folder is back under its name and the error propagates."""
    folder, old = tmp_path / "ckpt", tmp_path / ".ckpt.old-1"
    folder.mkdir()
    (folder / "v").write_text("1")
    new = tmp_path / "staging"
    new.mkdir()
    (new / "v").write_text("2")
    swap_folder(new, folder, old)
    assert (folder / "v").read_text() == "2" and not old.exists() and not new.exists()
    new.mkdir()
    (new / "v").write_text("3")
    real = os.replace

    def second_fails(src, dst):  # the new folder cannot take the name; putting back can
        if Path(src) == new and Path(dst) == folder:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(ck.os, "replace", second_fails)
    with pytest.raises(OSError):
        swap_folder(new, folder, old)
    monkeypatch.undo()
    assert (folder / "v").read_text() == "2" and not old.exists()
    swap_folder(new, tmp_path / "fresh", tmp_path / ".fresh.old")  # no previous folder
    assert (tmp_path / "fresh" / "v").read_text() == "3"


def test_train_cli_reports_os_errors_in_one_line(monkeypatch, capsys) -> None:
    import codec.training.cli as T

    def failing(*a, **k):
        raise OSError(errno.EACCES, "Permission denied", "/runs/x/events.out")

    monkeypatch.setattr(T, "load_config", lambda *a, **k: None)
    monkeypatch.setattr(T, "train", failing)
    assert T.main(["--config", "x.yaml"]) == 1
    assert capsys.readouterr().err == "error: /runs/x/events.out: Permission denied\n"


def test_checkpoint_write_error_names_the_folder(tmp_path: Path) -> None:
    import codec.training.loop as T

    with pytest.raises(OSError) as e, T._writing(tmp_path / "latest"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.errno == errno.ENOSPC
    assert (
        e.value.strerror
        == f"cannot write checkpoint {tmp_path / 'latest'}: No space left on device"
    )
