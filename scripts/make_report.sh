#!/usr/bin/env bash
# Regenerates everything the README shows from the committed checkpoints, with the project's own
# CLIs: the audio gates and the codec speed (bench/results), the judge's figures (docs/judge),
# the evaluation table + plot (docs/eval), the probe at two windows, the audio
# demonstrations (docs/audio) and the screenshots (docs/screenshots).
#   bash scripts/make_report.sh            (about 70-80 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export GRADIO_ANALYTICS_ENABLED=False
SPEECH=data/demo/sound_files/speech_demo/akg

# the issue-12 gates on audio (README "Gates on audio"): the demo set's val/test sounds, and the
# independent held-out set when it has been built (python -m codec.data.corpus heldout
# --out data/heldout; needs scripts/install_corpus_packages.sh --heldout)
# (ViSQOL on the first 48 clips, DNSMOS on speech, pitch kept by the neural F0 tracker, the
# audio judge; Opus and Codec2 beside the codecs)
$PY -m bench.gates --judge --references --json bench/results/gates_demo.json \
    | tee bench/results/gates_demo.md
if [ -f data/heldout/database.sqlite ]; then
  $PY -m bench.gates --dataset data/heldout --independent --max-clips 150 --judge --references \
      --json bench/results/gates_heldout.json | tee bench/results/gates_heldout.md
fi
# which F0 tracker the measures use, and what each measure costs
$PY -m bench.f0_pilot --dataset data/demo --dataset data/heldout --out bench/results/f0_pilot.md
$PY -m bench.metrics_speed --skip "CREPE full" | tee bench/results/metrics_speed.md
# encode + decode of a 10 s clip, both codecs, and their ratio
$PY -m bench.bench_codecs | tee bench/results/bench_codecs.txt
# the audio judge's figures (recognised as source, the transfer grid with its ceiling; about 45
# minutes with the defaults; JUDGE_ARGS="--clips 16" for a shorter grid), on the demo set and,
# when built, on the independent held-out set
# shellcheck disable=SC2086
$PY scripts/measure_judge.py --out docs/judge ${JUDGE_ARGS:-}
if [ -f data/heldout/database.sqlite ]; then
  # shellcheck disable=SC2086
  $PY scripts/measure_judge.py --heldout-root data/heldout --max-clips 150 \
      --out docs/judge/independent ${JUDGE_ARGS:-}
fi
# does the autoencoder under both codecs keep the instrument (its continuous reconstructions)
$PY -m bench.autoencoder_timbre checkpoints/encodec_demo \
    --figure bench/results/autoencoder_spectrograms.png | tee bench/results/autoencoder_timbre.md
# held-out evaluation with the field's measures and the reference codecs (the rate-quality
# chart docs/eval/rate_quality.png and the app's Reconstruct tab read docs/eval/results.json)
# (EnCodec at each bandwidth its checkpoint offers up to 6 kbps: 0.75 too when its config lists it)
$PY -m analysis evaluate --out docs/eval --window 6 --codecs almtokenizer,encodec,opus,codec2 \
    --windows 2,3,6,10 --max-clips 48 --visqol-clips 48 --transfer-clips 0
# the probe at w=3 (550 bit/s, the highest ALMTokenizer rate at or below half of 1.5 kbps)
$PY -m analysis probe --window 3 --attributes instrument,note,octave --out docs/eval/probe_w3

# speech reconstructions at w = 3, 6, 10 next to the original, Opus (6/12 kbps), Codec2
# (700C/1200/3200) and EnCodec at each bandwidth its
# checkpoint offers up to 6 kbps (1.5/3/6; 0.75 too when its config lists it)
$PY -m analysis reconstruct "$SPEECH/0001.wav" "$SPEECH/0006.wav" --windows 3,6,10 \
    --bandwidths checkpoint --codecs almtokenizer,encodec,opus,codec2 --out docs/audio
# traversal glides (and 8 steps) for both codecs
$PY -m analysis traverse "bass A3" "clarinet A6" --steps 8 --window 6 --out docs/audio
$PY -m analysis traverse "flute C5" "cello C3" --steps 8 --window 6 --out docs/audio
$PY -m analysis traverse "trumpet A4" "violin A4" --steps 8 --window 6 --out docs/audio
# speech to cello timbre transfer, before/after for both codecs
$PY -m analysis transfer --clip "$SPEECH/0001.wav" --target cello --alpha 1.0 --window 6 \
    --out docs/audio
# screenshots of the four tabs (starts the app on a free port with the bundled checkpoints)
$PY bench/screenshots.py
