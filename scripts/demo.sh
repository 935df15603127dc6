#!/usr/bin/env bash
# Set up, build, and run the demo workload under the embedded default
# instance, printing the instance's statistics when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -j"$(nproc)" >/dev/null
exec ./build/bin/usm run --stats -- ./build/examples/usm_demo "$@"
