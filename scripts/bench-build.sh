#!/usr/bin/env bash
# Builds what the benchmarks run, in release: the CLI and the bench_train and bench_dsp examples,
# in ONE cargo invocation. Its dependency features are exactly those of the CLI's own release
# build (`cargo build --release -p musicdiff-cli`, as scripts/demo.sh runs it), so the two share
# every compiled dependency. Built on its own (`-p musicdiff-train --example bench_train`), an
# example resolves features without the CLI's dependencies: indicatif (the CLI's progress bars)
# turns on portable-atomic's default features, portable-atomic sits under spin ->
# burn-autodiff -> burn-core, and all of burn compiled a second time (about 8 CPU minutes).
#
# Usage: scripts/bench-build.sh [extra cargo arguments, e.g. --locked]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p musicdiff-cli -p musicdiff-train -p musicdiff-dsp \
  --bin musicdiff --example bench_train --example bench_dsp "$@"
