#!/bin/sh
# Installs the Debian packages newsarch builds and tests with, when any is
# missing. Needs root for apt-get; otherwise it only says what is missing.
set -eu
PKGS="build-essential pkg-config liblmdb-dev libuv1-dev libmsgpack-dev libzstd-dev \
libjansson-dev libinih-dev libsystemd-dev libcmocka-dev libssl-dev zstd \
libutf8proc-dev libstemmer-dev"
# The fuzz targets (make fuzz, or make test with FUZZ_SECONDS set) need
# clang, its fuzzer runtime and python3 for the seeds: FUZZ=1 adds them.
if [ "${FUZZ:-}" = 1 ]; then
	PKGS="$PKGS clang libclang-rt-14-dev python3"
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing build dependencies:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "installing:$missing" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
