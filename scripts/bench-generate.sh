#!/usr/bin/env bash
# Generation-speed benchmark (not a test): the bundled model generating 10 s of audio on this
# machine, end to end (text encoding, sampling at the model's default steps, conversion to
# audio by the bundled vocoder, or Griffin-Lim when none is installed), as `musicdiff generate`
# runs it. Prints the wall time, the real-time factor (wall time over the 10 s produced; below 1
# is faster than real time) and the process's peak memory; then the conversion alone, the
# vocoder beside Griffin-Lim on the same generation, as multiples of real time (the vocoder's
# target: at least 100x); then the quality/speed trade-off over sampling steps.
#
# --check: one 2-step generation of 2 s and one log-mel comparison, checking that this script's
# parsing of the sidecar, /usr/bin/time and the .npy output works; no timing claims. It does not
# fetch assets (CI runs it after the test command, which does). CI runs it.
#
# Usage: scripts/bench-generate.sh [--model DIR] [--vocoder DIR] [--runs N]
#        scripts/bench-generate.sh --check [--model DIR] [--vocoder DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

model=models/default
vocoder=models/vocoder
runs=3
check=0
seconds=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --vocoder) vocoder=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --check) check=1; seconds=2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if (( ! check )); then bash scripts/fetch-assets.sh --minimal >/dev/null; fi
bash scripts/bench-build.sh
bin=target/release/musicdiff
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="slow bossa nova on nylon guitar, A minor, 90 bpm"

# One generation: prints "wall rtf text sampling vocoder peak_kb steps sampler".
one() {
  /usr/bin/time -f "%M" -o "$tmp/time" "$bin" -q generate "$prompt" --seconds "$seconds" --model "$model" \
    --no-png -o "$tmp/bench.wav" "$@" >/dev/null
  python3 - "$tmp/bench.json" "$(cat "$tmp/time")" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
t = j["timings"]
print(t["total"], j["real_time_factor"], t["text"], t["sampling"], t["vocoder"], sys.argv[2], j["steps"], j["sampler"])
PY
}

# The log-mel of a WAV as .npy, and the distance between two such (see the trade-off below).
logmel() { "$bin" -q spec "$1" -o "$tmp/spec.png" --npy "$2" >/dev/null; }
distance() {
  python3 - "$1" "$2" <<'PY'
import sys
from array import array
def load(path):
    raw = open(path, "rb").read()
    header_len = int.from_bytes(raw[8:10], "little")
    a = array("f")
    a.frombytes(raw[10 + header_len:])
    return a
ref, cand = load(sys.argv[1]), load(sys.argv[2])
print(sum(abs(x - y) for x, y in zip(ref, cand)) / len(ref))
PY
}

echo "model: $model ($(python3 -c "import json;m=json.load(open('$model/model.json'));print(m['id'], m['weights']['parameters'], 'parameters,', m['weights']['dtype'])"))"
if (( check )); then
  line=$(one --steps 2 --gl-iters 4)
  read -r wall rtf text sampling vocoder peak steps sampler <<<"$line"
  for v in "$wall" "$rtf" "$text" "$sampling" "$vocoder" "$peak"; do
    [[ $v =~ ^[0-9.e+-]+$ ]] || { echo "check: could not parse the generation line: $line" >&2; exit 1; }
  done
  [[ $steps == 2 && -n $sampler ]] || { echo "check: the sidecar says $steps steps of '$sampler', expected 2: $line" >&2; exit 1; }
  logmel "$tmp/bench.wav" "$tmp/ref.npy"
  cp "$tmp/ref.npy" "$tmp/cand.npy"
  dist=$(distance "$tmp/ref.npy" "$tmp/cand.npy")
  [[ $dist == 0.0 ]] || { echo "check: a log-mel's distance to itself is $dist, not 0" >&2; exit 1; }
  echo "check: a ${seconds} s generation with $steps $sampler steps ran; its sidecar, peak memory and log-mel .npy parse"
  if [[ -f $vocoder/vocoder.json ]]; then
    read -r _ _ _ _ voc _ <<<"$(one --steps 2 --vocoder "$vocoder")"
    [[ $voc =~ ^[0-9.e+-]+$ ]] || { echo "check: could not parse the vocoder's time: $voc" >&2; exit 1; }
    echo "check: the same generation through the vocoder $vocoder ran (conversion time parsed)"
  fi
  exit 0
fi
echo "machine: $(nproc) cores; $seconds s of audio per run; $runs measured runs after one warm-up"
one >/dev/null
best=""
for i in $(seq "$runs"); do
  line=$(one)
  echo "$i $line" | awk '{printf "  run %s: wall %.2f s, RTF %.3f (text %.2f s, sampling %.2f s, vocoder %.2f s), peak %.0f MB, %s steps %s\n", $1, $2, $3, $4, $5, $6, $7/1024, $8, $9}'
  best=$(printf '%s\n%s\n' "$best" "$line" | sed '/^$/d' | sort -g | head -1)
done
read -r wall rtf _ _ _ peak steps sampler <<<"$best"
printf 'default settings (%s, %s steps): best wall %.2f s for 10 s of audio -> real-time factor %.3f (target < 1: %s); peak memory %.0f MB\n' \
  "$sampler" "$steps" "$wall" "$rtf" "$(awk -v r="$rtf" 'BEGIN{print (r < 1) ? "met" : "NOT met"}')" "$(awk -v k="$peak" 'BEGIN{print k/1024}')"

# The conversion alone: the same 10 s through the vocoder and through Griffin-Lim (the
# sidecar's vocoder time: conversion and splicing), best of the measured runs each.
conversion() { # ARGS... -> best conversion seconds over $runs runs
  local best=""
  for i in $(seq "$runs"); do
    read -r _ _ _ _ voc _ <<<"$(one --steps 2 "$@")"
    best=$(printf '%s\n%s\n' "$best" "$voc" | sed '/^$/d' | sort -g | head -1)
  done
  echo "$best"
}
gl=$(conversion --vocoder griffin-lim)
if [[ -f $vocoder/vocoder.json ]]; then
  voc=$(conversion --vocoder "$vocoder")
  awk -v v="$voc" -v g="$gl" -v s="$seconds" -v d="$vocoder" 'BEGIN {
    printf "conversion of %d s: vocoder %s %.3f s (%.0fx real time; target >= 100x: %s), Griffin-Lim %.3f s (%.0fx real time); vocoder/GL time ratio %.3f\n",
      s, d, v, s / v, (s / v >= 100) ? "met" : "NOT met", g, s / g, v / g }'
else
  awk -v g="$gl" -v s="$seconds" -v d="$vocoder" 'BEGIN {
    printf "conversion of %d s: Griffin-Lim %.3f s (%.0fx real time); no vocoder at %s\n", s, g, s / g, d }'
fi

# Trade-off: time against how far the result is from the converged sampler (DPM-Solver++(2M)
# at 100 steps, same seed): mean absolute difference of the output's log-mel, in ln units
# (0.1 is about 0.4 dB). It measures solver error only, not musical quality.
one --steps 100 --sampler dpm++2m >/dev/null
logmel "$tmp/bench.wav" "$tmp/ref.npy"
echo "trade-off (one run each; distance = mean |log-mel - log-mel at 100 dpm++2m steps|):"
for s in 10 20 40; do
  for sampler in dpm++2m ddim heun; do
    read -r wall rtf _ <<<"$(one --steps "$s" --sampler "$sampler")"
    logmel "$tmp/bench.wav" "$tmp/cand.npy"
    dist=$(distance "$tmp/ref.npy" "$tmp/cand.npy")
    printf '  %-8s %3d steps: wall %5.2f s, RTF %.3f, distance %.3f\n' "$sampler" "$s" "$wall" "$rtf" "$dist"
  done
done
