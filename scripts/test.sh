#!/usr/bin/env bash
# The test command: installs the assets the tests need (scripts/fetch-assets.sh --minimal:
# TimGM6mb, MMA, abcmidi, the music21 corpus and all-MiniLM-L6-v2; idempotent, seconds when
# present), then runs every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh --minimal
cargo test --workspace "$@"
