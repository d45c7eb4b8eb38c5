#!/usr/bin/env bash
# The conversion-loss experiment (issue 13; results in docs/experiments.md): models/default
# fine-tuned with and without the conversion term ([conversion] weight 0.1 vs 0, frozen
# vocoder models/vocoder), equal steps (configs/experiments/conversion-{off,on}.toml),
# then both scored by the evaluation suite on the same held-out clips, seeds and vocoder.
# Needs data/shards (musicdiff data prepare) and data/corpus/test. Resumable: a run that exists
# is resumed to its configured steps; an export or report that exists is kept.
# About 20 min per arm and 6 min per evaluation on 2 cores.
#
# Usage: scripts/experiment-conversion.sh [--bin PATH] [--n N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/musicdiff
n=64
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for f in data/shards data/corpus/test/metadata.jsonl models/default/model.json models/vocoder/vocoder.json; do
  [[ -e $f ]] || { echo "missing $f (see the README: data prepare, corpus build, fetch-assets)" >&2; exit 1; }
done
for arm in off on; do
  run=runs/exp-conversion-$arm
  if [[ -f $run/checkpoints/latest ]]; then
    "$bin" -q train --data data/shards --config "configs/experiments/conversion-$arm.toml" --out "$run" --resume
  else
    "$bin" -q train --data data/shards --config "configs/experiments/conversion-$arm.toml" --out "$run" \
      --init-from models/default
  fi
  [[ -f $run/export/model.json ]] || "$bin" -q export "$run" -o "$run/export" --id "conversion-$arm"
done
for arm in off on; do
  out=reports/exp-conversion-$arm
  [[ -f $out/report.json ]] || "$bin" eval --model "runs/exp-conversion-$arm/export" \
    --reference data/corpus/test --n "$n" --no-baselines --vocoder models/vocoder --out "$out"
done
echo "reports: reports/exp-conversion-off, reports/exp-conversion-on"
