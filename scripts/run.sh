#!/usr/bin/env bash
# Build and run tidegate (release). With no arguments it serves conf/tidegate.toml, or the
# embedded demo when that file is absent, on http://127.0.0.1:6188.
#   scripts/run.sh                 # default config
#   scripts/run.sh -c my.toml      # any tidegate arguments
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -- "$@"
