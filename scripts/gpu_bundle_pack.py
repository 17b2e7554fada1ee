"""Pack a GPU bundle's training run into $OUT within the device tool's return limits.

Run by the bundle's run_gpu.sh (copied there by scripts/gpu_bundle.py); it needs only the
standard library, safetensors and tensorboard, never `codec`:

    python gpu_bundle_pack.py --work WORK --out OUT --rc RC --seconds S --config CONFIG -- [k=v ...]

OUT receives flat files only (at most 8, each at most 16 MiB): model.safetensors + config.json
of WORK/ckpt/best (else final, else latest), discriminator.safetensors (of latest/ when the
chosen folder has none), train.log (its end, when longer), scalars.csv (step, tag, value,
wall_time of every TensorBoard scalar) and result.json (exit status, seconds, chosen
checkpoint, last value of each scalar, versions, the bundle's bundle.json).
A model.safetensors over the limit is stored as float16; one still over it is left out and
result.json says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import shutil
import sys
from pathlib import Path

log = logging.getLogger("gpu_bundle_pack")

FILE_LIMIT = 16 * (1 << 20)  # bytes per returned file (device README)
LOG_TAIL = 15 * (1 << 20)
CHECKPOINT_ORDER = ("best", "final", "latest")


def choose_checkpoint(work: Path) -> Path | None:
    """The first of best/, final/, latest/ under WORK/ckpt that holds a model."""
    for name in CHECKPOINT_ORDER:
        folder = work / "ckpt" / name
        if (folder / "model.safetensors").is_file():
            return folder
    return None


def pack_weights(src: Path, dst: Path) -> str:
    """Copy a safetensors file, as float16 when it is over the limit; returns what was done."""
    if src.stat().st_size <= FILE_LIMIT:
        shutil.copy2(src, dst)
        return "copied"
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(half, str(dst), metadata=meta)
    if dst.stat().st_size > FILE_LIMIT:
        dst.unlink()
        return f"left out: {src.stat().st_size} bytes, over the limit even as float16"
    return "float16"


def write_scalars(tb: Path, dst: Path) -> dict[str, float]:
    """Every TensorBoard scalar under `tb` as CSV rows; returns the last value per tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    last: dict[str, float] = {}
    with open(dst, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["step", "tag", "value", "wall_time"])
        for tag in sorted(acc.Tags().get("scalars", [])):
            for e in acc.Scalars(tag):
                w.writerow([e.step, tag, repr(e.value), f"{e.wall_time:.3f}"])
                last[tag] = e.value
    return last


def copy_log(src: Path, dst: Path) -> None:
    """The training log, or its last LOG_TAIL bytes."""
    with open(src, "rb") as f:
        f.seek(max(0, src.stat().st_size - LOG_TAIL))
        dst.write_bytes(f.read())


def versions() -> dict[str, str | None]:
    try:
        import torch
    except ImportError:
        return {"python": platform.python_version(), "torch": None, "device": None}
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.machine()
    return {"python": platform.python_version(), "torch": torch.__version__, "device": dev}


def pack(work: Path, out: Path, result: dict) -> dict:
    """Fill `out` from the run in `work`; returns result.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    folder = choose_checkpoint(work)
    result["checkpoint"] = None if folder is None else folder.name
    if folder is not None:
        result["model"] = pack_weights(folder / "model.safetensors", out / "model.safetensors")
        shutil.copy2(folder / "config.json", out / "config.json")
        # best/ and final/ hold the model alone; latest/ also the discriminator (a warm start
        # for the adversarial terms of a later run)
        for src in (folder, work / "ckpt" / "latest"):
            disc = src / "discriminator.safetensors"
            if disc.is_file() and disc.stat().st_size <= FILE_LIMIT:
                shutil.copy2(disc, out / "discriminator.safetensors")
                result["discriminator"] = src.name
                break
    if (work / "train.log").is_file():
        copy_log(work / "train.log", out / "train.log")
    if (work / "tb").is_dir():
        result["last_scalars"] = write_scalars(work / "tb", out / "scalars.csv")
    bundle = Path(__file__).resolve().parent / "bundle.json"
    if bundle.is_file():
        result["bundle"] = json.loads(bundle.read_text())
    result.update(versions())
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Pack a GPU bundle's run into OUT (flat, limited).")
    p.add_argument("--work", type=Path, required=True, help="the run's folder (ckpt/, tb/)")
    p.add_argument("--out", type=Path, required=True, help="the folder that comes back")
    p.add_argument("--rc", type=int, default=0, help="the training's exit status")
    p.add_argument("--seconds", type=int, default=0, help="the training's wall time")
    p.add_argument("--config", default="", help="the config trained")
    p.add_argument("overrides", nargs="*", help="the key=value overrides given")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = {"rc": args.rc, "seconds": args.seconds, "config": args.config,
              "overrides": args.overrides}  # fmt: skip
    result = pack(args.work, args.out, result)
    sizes = {f.name: f.stat().st_size for f in sorted(args.out.iterdir()) if f.is_file()}
    log.info("packed %s: %s", args.out, ", ".join(f"{k} {v / (1 << 20):.2f} MiB"
                                                   for k, v in sizes.items()))  # fmt: skip
    if result["checkpoint"] is None:
        log.error("no checkpoint under %s/ckpt: only the log and scalars came back", args.work)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
