#!/usr/bin/env bash
# The main job, end to end from a fresh clone: build musicdiff and run it on the shipped example
# clip. Today that is the spectrogram round trip (audio -> log-mel -> audio with Griffin-Lim)
# plus the spectrogram picture; once the bundled model lands it becomes `musicdiff generate`.
# Outputs go to out/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p musicdiff-cli
mkdir -p out
bin=target/release/musicdiff
$bin spec examples/nylon_arpeggio.ogg -o out/nylon_arpeggio.png --npy out/nylon_arpeggio.npy
$bin roundtrip examples/nylon_arpeggio.ogg -o out/nylon_arpeggio_roundtrip.wav \
  --png out/nylon_arpeggio_roundtrip.png
echo "wrote out/nylon_arpeggio.png, out/nylon_arpeggio.npy, out/nylon_arpeggio_roundtrip.{wav,png}"
