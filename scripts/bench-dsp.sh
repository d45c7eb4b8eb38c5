#!/usr/bin/env bash
# DSP benchmark (not a test): musicdiff vs librosa on the same 30 s clip, in one run, for
# (a) log-mel and (b) 32-iteration fast Griffin-Lim. Prints times, speed-up ratios and how
# closely the outputs agree. Installs the pinned Python peer (librosa) with pip if missing.
#
# Usage: scripts/bench-dsp.sh [--seconds 30] [--repeats 9]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import librosa, soundfile' 2>/dev/null; then
  echo "installing the Python peer (bench/requirements.txt)..." >&2
  python3 -m pip install --quiet -r bench/requirements.txt
fi
cargo build --release --quiet -p musicdiff-dsp --example bench_dsp
python3 bench/bench_dsp.py target/release/examples/bench_dsp "$@"
