#!/usr/bin/env bash
# One command for a lent GPU (e.g. `device`'s H200): the shared autoencoder, EnCodec's RVQ on it,
# then ALMTokenizer's stage 2 on it, each bounded in minutes so the whole run fits in ~10 min.
#   bash scripts/train_gpu.sh [AE_MINUTES] [ALM_MINUTES]     (defaults 5 and 4)
# Data: the bundled demo set, plus the corpus when CORPUS=data/corpus is set (the corpus is
# ~1.4 GB and is built with `python -m codec.data.corpus build --out DIR`). Results land in
# work_dirs/gpu/; compare with `python -m bench.gates --encodec work_dirs/gpu/encodec
# --alm work_dirs/gpu/almtokenizer/best` before shipping anything.
set -euo pipefail
cd "$(dirname "$0")/.."
AE_MIN=${1:-5}
ALM_MIN=${2:-4}
PY=${PY:-.venv/bin/python}
test -x "$PY" || { python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; }
MIX=()
if [ -n "${CORPUS:-}" ]; then
  MIX=("dataloader.dataset=corpus" "dataloader.dataset_path=$CORPUS" "dataloader.weight=0.7"
       "dataloader.mix=[{dataset: demo, weight: 0.3}]")
fi
$PY -m codec.training --config configs/autoencoder.yaml training.device=cuda training.threads=null \
  dataloader.batch_size=32 training.max_minutes="$AE_MIN" training.eval_batches=8 \
  training.checkpoint_dir=work_dirs/gpu/autoencoder training.writer_dir=runs/gpu/autoencoder \
  "${MIX[@]}"
$PY -m codec.training.fit_rvq --config configs/autoencoder.yaml --autoencoder work_dirs/gpu/autoencoder/best \
  --out work_dirs/gpu/encodec --crops 4000 --steps 3000 "${MIX[@]}"
$PY -m codec.training --config configs/demo.yaml training.device=cuda training.threads=null \
  model.base_args.frontend_checkpoint=work_dirs/gpu/encodec dataloader.batch_size=32 \
  training.max_minutes="$ALM_MIN" training.checkpoint_dir=work_dirs/gpu/almtokenizer \
  training.writer_dir=runs/gpu/almtokenizer training.latent_cache=work_dirs/gpu/latent_cache
