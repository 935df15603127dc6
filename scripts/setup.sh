#!/usr/bin/env bash
# Install the Debian packages USM needs to build, test and benchmark.
# Run as root (CI and the development machines are); idempotent.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config  # compiler, make, pkg-config for plugins
	libcmocka-dev               # unit tests
	liburing-dev                # asynchronous I/O of the file swap device
	liblz4-dev libzstd-dev      # the compressed swap device
	python3 sqlite3 stress-ng   # real programs the functional tests run
	util-linux                  # setpriv, for the other-uid test
	gnuplot-nox                 # benchmark plots
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
