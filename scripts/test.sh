#!/usr/bin/env bash
# Set up, build (plain and ASan+UBSan), and run the whole test suite
# against the sanitizer build.  Prints "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -j"$(nproc)" >/dev/null
make -j"$(nproc)" SAN=1 >/dev/null
exec ./tests/run.sh build-san
