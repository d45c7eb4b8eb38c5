#!/usr/bin/env bash
# Training-speed benchmark (not a test): musicdiff's DiT (burn, Flex CPU backend) against the
# same architecture in PyTorch CPU (bench/bench_train.py), in one run on this machine. Prints
# the time of a training step and of an inference forward for both, and their ratios.
# Installs the pinned PyTorch peer with pip if it is missing.
#
# Usage: scripts/bench-train.sh [CONFIG.toml (default configs/train/small.toml)] [--steps N] [--warmup N]
set -euo pipefail
cd "$(dirname "$0")/.."

config=configs/train/small.toml
if [[ $# -gt 0 && $1 != --* ]]; then config=$1; shift; fi
if ! python3 -c 'import torch' 2>/dev/null; then
  echo "installing the Python peer (bench/requirements-train.txt; PyTorch is large)..." >&2
  python3 -m pip install --quiet -r bench/requirements-train.txt
fi
cargo build --release --quiet -p musicdiff-train --example bench_train
python3 bench/bench_train.py target/release/examples/bench_train "$config" "$@"
