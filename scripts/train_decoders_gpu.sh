#!/usr/bin/env bash
# The decoder stage of both codecs on a lent GPU, in one command: each codec's decoder trains on
# its own tokens from the bundled checkpoint (configs/decoder_alm.yaml, configs/decoder_encodec.yaml),
# the two runs side by side on one GPU, same steps, with EnCodec's MS-STFT discriminator on (the
# CPU recipe leaves it off: it needs thousands of steps to help; bench/results/decoder_stage_pilots.md).
#   bash scripts/train_decoders_gpu.sh [MINUTES]          (default 5; each run gets MINUTES)
# Data: the corpus at CORPUS (default data/corpus) + the demo set, as the configs say; without a
# corpus, DEMO_ONLY=1 trains on the demo set alone (measured: that specialises a decoder).
# Results: work_dirs/gpu_decoder_{alm,encodec}/best; gate them with
#   python -m bench.gates --alm work_dirs/gpu_decoder_alm/best --encodec work_dirs/gpu_decoder_encodec/best
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-5}
PY=${PY:-.venv/bin/python}
test -x "$PY" || { python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; }
DATA=("dataloader.dataset_path=${CORPUS:-data/corpus}")
if [ -n "${DEMO_ONLY:-}" ]; then
  DATA=("dataloader.dataset=demo" "dataloader.dataset_path=data/demo" "dataloader.mix=[]")
fi
for codec in alm encodec; do
  $PY -m codec.training --config "configs/decoder_$codec.yaml" training.device=cuda \
    training.threads=null dataloader.batch_size=32 dataloader.nsecs=1.0 \
    training.lambdas.adv=3.0 training.lambdas.feat=3.0 training.disc_warmup_steps=1000 \
    training.max_minutes="$MIN" training.eval_freq=500 training.checkpoint_freq=500 \
    training.checkpoint_dir="work_dirs/gpu_decoder_$codec" training.writer_dir="runs/gpu_decoder_$codec" \
    "${DATA[@]}" &
done
wait
