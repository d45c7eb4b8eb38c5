#!/usr/bin/env bash
# The standard evaluation suite on the bundled model (docs/evaluation.md), from a fresh clone:
# installs the assets (the full set: the corpus the model was trained on is rendered with both
# SoundFonts), builds musicdiff, renders the held-out test split of that corpus (the default
# 20 h corpus, seed 0; only its test clips) and a few hundred of its training clips
# for the Markov-chain baseline, then runs `musicdiff eval` on 128 clips into reports/default/.
# Resumable: run it again after an interruption and it continues where it stopped.
#
# Usage: scripts/eval.sh [more musicdiff eval flags, e.g. --n 32 --out reports/quick]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-assets.sh >&2
cargo build --release --quiet -p musicdiff-cli
md=target/release/musicdiff

# The corpus of the bundled model (musicdiff corpus build's defaults): its test split holds out
# whole styles and tunes, which the model never saw.
if [[ ! -f data/corpus/test/metadata.jsonl ]]; then
  $md corpus build --out data/corpus --only-split test
fi
train=data/corpus/train
if [[ ! -f $train/metadata.jsonl ]]; then
  # The first clips of the same corpus's training split (the same clips the model was trained
  # on): the Markov chain's frames.
  train=data/eval-train
  [[ -f $train/train/metadata.jsonl ]] || $md corpus build --out $train --hours 0.8 --only-split train
  train=$train/train
fi

$md eval --model models/default --reference data/corpus/test --train "$train" \
  --n 128 --out reports/default "$@"
