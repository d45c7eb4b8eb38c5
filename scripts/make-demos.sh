#!/usr/bin/env bash
# Regenerates the bundled model's demos (models/default/demos/) with the README's commands:
# the demo prompt, a longer piece, a filled span of it and a continuation of it. Run after
# replacing the bundled model; the WAV, PNG and JSON of each are committed with it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-assets.sh --minimal >&2
cargo build --release --quiet -p musicdiff-cli
bin=target/release/musicdiff
out=models/default/demos
mkdir -p "$out"
$bin generate "slow bossa nova on nylon guitar, A minor, 90 bpm" --seconds 10 -o "$out/bossa.wav"
$bin generate "swing jazz with walking bass and drums" --seconds 20 --seed 7 -o "$out/swing.wav"
$bin fill "$out/swing.wav" --from 8 --to 12 "piano solo" -o "$out/swing-filled.wav"
$bin continue "$out/swing.wav" --seconds 10 "the band plays louder" -o "$out/swing-longer.wav"
$bin generate "fast jig played on fiddle" --genre "jig fiddle tune" --seed 3 --seconds 10 -o "$out/jig.wav"
