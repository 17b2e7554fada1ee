#!/usr/bin/env bash
# Train from a GPU bundle and package the result under $OUT: one command on a lent GPU.
# scripts/gpu_bundle.py copies this file into the bundle as run_gpu.sh; run it there:
#   bash gpu_bundle/run_gpu.sh CONFIG [key=value ...]
# 1. installs what the GPU image lacks (soundfile, cffi, pycparser, encodec) from wheels/ into
#    WORK/site (no network there);
# 2. checks that `codec` is imported from this bundle, nothing else;
# 3. trains `python -m codec.training --config CONFIG` on DEVICE (default cuda) for MINUTES
#    (training.max_minutes, default 6), your key=value overrides after those defaults;
#    checkpoints and TensorBoard events go to WORK (default /tmp/gpu_bundle_work), never into $OUT;
# 4. packs $OUT flat within the device tool's limits (8 files, 16 MiB each): model.safetensors
#    (fp16 if the fp32 file is over 16 MiB) + config.json (+ discriminator.safetensors) of the
#    best (else final, else latest) checkpoint, train.log, scalars.csv, result.json.
# Environment: OUT (default ./out), WORK, MINUTES, DEVICE, PY (default python3).
# Exit status: training's (0 done, 2 bad config, 130 stopped at the time limit), else pack's.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE" || exit 1
CONFIG=${1:?usage: bash run_gpu.sh CONFIG [key=value ...]}
shift
OUT=${OUT:-$HERE/out}
WORK=${WORK:-/tmp/gpu_bundle_work}
PY=${PY:-python3}
MINUTES=${MINUTES:-6}
DEVICE=${DEVICE:-cuda}
rm -rf "$WORK/ckpt" "$WORK/tb" "$WORK/train.log"
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import soundfile, encodec" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
    wheels/*.whl || { echo "error: installing wheels/ failed" >&2; exit 1; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - "$HERE" <<'EOF' || exit 1
import importlib.util, os, sys
need = ("torch", "torchaudio", "numpy", "scipy", "yaml", "safetensors", "soundfile", "encodec",
        "einops", "tqdm", "tensorboard")
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"error: missing Python packages: {', '.join(missing)}")
import codec
where, here = os.path.realpath(codec.__file__), os.path.realpath(sys.argv[1])
if not where.startswith(here + os.sep):
    sys.exit(f"error: codec is imported from {where}, not from the bundle {here}")
import torch
print(f"bundle {here}: torch {torch.__version__}, cuda {torch.cuda.is_available()}")
EOF

START=$(date +%s)
timeout -s INT -k 30 $(((MINUTES + 3) * 60)) "$PY" -m codec.training --config "$CONFIG" \
  training.device="$DEVICE" training.threads=null training.max_minutes="$MINUTES" "$@" \
  training.checkpoint_dir="$WORK/ckpt" training.writer_dir="$WORK/tb" 2>&1 | tee "$WORK/train.log"
RC=${PIPESTATUS[0]}
"$PY" gpu_bundle_pack.py --work "$WORK" --out "$OUT" --rc "$RC" \
  --seconds $(($(date +%s) - START)) --config "$CONFIG" -- "$@"
PACK=$?
[ "$RC" -ne 0 ] && exit "$RC"
exit "$PACK"
