#!/usr/bin/env bash
# The main job, end to end from a fresh clone: install the assets generation needs (the MiniLM
# text encoder among them; idempotent, checksummed), build musicdiff, and generate music from a
# prompt with the bundled default model (models/default). Writes out/demo-bossa.{wav,png,json}.
#
# Usage: scripts/demo.sh ["PROMPT"] [more musicdiff generate flags, e.g. --seconds 30 --seed 3]
set -euo pipefail
cd "$(dirname "$0")/.."

prompt="slow bossa nova on nylon guitar, A minor, 90 bpm"
if [[ $# -gt 0 && $1 != --* ]]; then prompt=$1; shift; fi

bash scripts/fetch-assets.sh --minimal >&2
cargo build --release --quiet -p musicdiff-cli
mkdir -p out
target/release/musicdiff generate "$prompt" --seconds 10 -o out/demo-bossa.wav "$@"
echo "listen: out/demo-bossa.wav  picture: out/demo-bossa.png  how it was made: out/demo-bossa.json"
