#!/usr/bin/env bash
# The design's experiments (docs/experiments.md), from a fresh clone, one after another:
# installs the assets, builds musicdiff, renders the corpus and prepares the data each
# experiment needs (skipping what is there), then runs `musicdiff experiment` on each config.
#
# Finished arms survive a lost machine: each arm's result.json (its settings, training figures,
# curves and evaluation reports) is saved with the experiment's report under
# docs/experiments/NAME/, which is committed; on the next run they are put back into
# experiments/NAME/arms/, where the runner counts them as finished (it refuses them if the
# config's settings have changed). Unfinished arms resume from their checkpoints when the
# machine kept experiments/, and train again when it did not.
#
# Usage: scripts/experiments.sh [NAME ...]     (default: masking controls positions hop-lengths backbone)
#        scripts/experiments.sh --save [NAME ...]   only copy the finished arms and reports to docs/
# Run it in the background and read experiments/NAME/report.md as it goes:
#   nohup bash scripts/experiments.sh > runs/experiments.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

save_only=0
if [[ ${1:-} == --save ]]; then
  save_only=1
  shift
fi
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(masking controls positions hop-lengths backbone)
for name in "${names[@]}"; do
  [[ -f configs/experiments/$name.toml ]] || { echo "experiments.sh: no configs/experiments/$name.toml" >&2; exit 2; }
done

# Copies experiments/NAME's report and finished arms' results into docs/experiments/NAME/.
save() {
  local name=$1 src=experiments/$1 dst=docs/experiments/$1
  [[ -d $src ]] || return 0
  mkdir -p "$dst"
  for f in report.md report.json loss.svg; do
    [[ -f $src/$f ]] && cp "$src/$f" "$dst/$f"
  done
  for result in "$src"/arms/*/result.json; do
    [[ -f $result ]] || continue
    local arm
    arm=$(basename "$(dirname "$result")")
    mkdir -p "$dst/arms/$arm"
    cp "$result" "$dst/arms/$arm/result.json"
  done
  echo "experiments.sh: saved $src -> $dst" >&2
}

# Puts saved results of finished arms back where the runner looks for them.
restore() {
  local name=$1 saved=docs/experiments/$1/arms
  [[ -d $saved ]] || return 0
  for result in "$saved"/*/result.json; do
    [[ -f $result ]] || continue
    local arm dst
    arm=$(basename "$(dirname "$result")")
    dst=experiments/$name/arms/$arm/result.json
    if [[ ! -f $dst ]]; then
      mkdir -p "$(dirname "$dst")"
      cp "$result" "$dst"
      echo "experiments.sh: $name/$arm finished in an earlier session (restored its result)" >&2
    fi
  done
}

if [[ $save_only == 1 ]]; then
  for name in "${names[@]}"; do save "$name"; done
  exit 0
fi

bash scripts/fetch-assets.sh >&2
cargo build --release --quiet -p musicdiff-cli
md=target/release/musicdiff

# The default corpus and its shards: every experiment trains on them or beside them.
[[ -f data/corpus/test/metadata.jsonl && -f data/corpus/train/metadata.jsonl ]] ||
  $md corpus build --out data/corpus
[[ -f data/shards/manifest.json ]] || $md data prepare --data data/corpus --out data/shards

for name in "${names[@]}"; do
  case $name in
    positions)
      # 32 s clips of the held-out styles, for 30 s generated window by window.
      [[ -f data/corpus-long/test/metadata.jsonl ]] ||
        $md corpus build --out data/corpus-long --clip-seconds 32 --only-split test
      ;;
    hop-lengths)
      for hop in 128 512; do
        [[ -f data/shards-hop$hop/manifest.json ]] ||
          $md data prepare --data data/corpus --config configs/data/hop$hop.toml --out data/shards-hop$hop
      done
      ;;
  esac
  restore "$name"
  status=0
  $md -q experiment "configs/experiments/$name.toml" || status=$?
  save "$name"
  [[ $status == 0 ]] || { echo "experiments.sh: $name stopped (exit $status)" >&2; exit "$status"; }
done
