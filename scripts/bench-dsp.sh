#!/usr/bin/env bash
# DSP benchmark (not a test): musicdiff vs librosa on the same 30 s clip, in one run, for
# (a) log-mel and (b) 32-iteration fast Griffin-Lim. Prints times, speed-up ratios and how
# closely the outputs agree. Installs the pinned Python peer (librosa) with pip if missing.
#
# --check: builds the Rust side and runs it once on a 2 s clip made with Python's standard
# library, checking that its JSON line and output files are what bench/bench_dsp.py reads; no
# librosa, no timings. CI runs it.
#
# Usage: scripts/bench-dsp.sh [--seconds 30] [--repeats 9]
#        scripts/bench-dsp.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --check ]]; then
  bash scripts/bench-build.sh
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 - "$tmp/clip.wav" <<'PY'
import math, struct, sys, wave
sr = 22050
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sr)
    w.writeframes(b"".join(
        struct.pack("<h", int(8000 * (math.sin(2 * math.pi * 220 * i / sr) + 0.5 * math.sin(2 * math.pi * 330 * i / sr))))
        for i in range(2 * sr)))
PY
  target/release/examples/bench_dsp "$tmp/clip.wav" "$tmp" 1 >"$tmp/out.json"
  python3 - "$tmp" <<'PY'
import ast, json, pathlib, sys
tmp = pathlib.Path(sys.argv[1])
r = json.loads((tmp / "out.json").read_text())
for key in ("logmel_s", "griffinlim32_s", "threads", "seconds"):
    assert key in r, f"bench_dsp printed no {key}: {r}"
assert abs(r["seconds"] - 2.0) < 1e-6, r
raw = (tmp / "rust_logmel.npy").read_bytes()
header = raw[10:10 + int.from_bytes(raw[8:10], "little")].decode()
shape = ast.literal_eval(header)["shape"]
assert shape[0] == 80 and shape[1] > 100, f"log-mel shape {shape}"
with open(tmp / "rust_gl.wav", "rb") as f:
    assert f.read(4) == b"RIFF"
print(f"check: bench_dsp ran on a 2 s clip: log-mel {shape[0]}x{shape[1]}, Griffin-Lim WAV written, JSON as bench_dsp.py reads it")
PY
  exit 0
fi

if ! python3 -c 'import librosa, soundfile' 2>/dev/null; then
  echo "installing the Python peer (bench/requirements.txt)..." >&2
  python3 -m pip install --quiet -r bench/requirements.txt
fi
bash scripts/bench-build.sh
python3 bench/bench_dsp.py target/release/examples/bench_dsp "$@"
