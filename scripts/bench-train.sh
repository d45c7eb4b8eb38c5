#!/usr/bin/env bash
# Training-speed benchmark (not a test): musicdiff's DiT (burn, Flex CPU backend) against the
# same architecture in PyTorch CPU (bench/bench_train.py, bench/dit_torch.py), in one run on this
# machine. Prints the time of a training step and of an inference forward for both, and their
# ratios. Installs the pinned PyTorch peer with pip if it is missing.
#
# --check: one step of the tiny config on each side, no timings: the parity checks only (the
# Rust binary's parameter count and, when PyTorch is installed, the PyTorch model's parameter
# table against bench/dit_params.json). It never installs PyTorch; CI runs it.
#
# Usage: scripts/bench-train.sh [CONFIG.toml (default configs/train/small.toml)] [--steps N] [--warmup N]
#        scripts/bench-train.sh --check [CONFIG.toml (default configs/train/tiny.toml)]
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
args=()
for a in "$@"; do
  if [[ $a == --check ]]; then check=1; else args+=("$a"); fi
done
config=configs/train/small.toml
if (( check )); then config=configs/train/tiny.toml; fi
if [[ ${#args[@]} -gt 0 && ${args[0]} != --* ]]; then config=${args[0]}; args=("${args[@]:1}"); fi
if (( ! check )) && ! python3 -c 'import torch' 2>/dev/null; then
  echo "installing the Python peer (bench/requirements-train.txt; PyTorch is large)..." >&2
  python3 -m pip install --quiet -r bench/requirements-train.txt
fi
bash scripts/bench-build.sh
if (( check )); then args+=(--check); fi
python3 bench/bench_train.py target/release/examples/bench_train "$config" ${args[@]+"${args[@]}"}
