#!/usr/bin/env bash
# Installs the system packages QKDChannel needs on a fresh Debian/Ubuntu machine (idempotent).
# Swift 6.x itself is expected on PATH. Run as root or with sudo available.
set -euo pipefail
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libsodium 2>/dev/null || need+=(libsodium-dev)   # CSodium (MACs, randomness, wiping)
pkg-config --exists gmp 2>/dev/null || need+=(libgmp-dev)             # CGMP (privacy amplification)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)     # GRDB (durable key pool)
command -v spin >/dev/null 2>&1 || need+=(spin)                      # Spec/ model checking
command -v openssl >/dev/null 2>&1 || need+=(openssl)                # tests of PEM files made by openssl
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v swift >/dev/null 2>&1 || { echo "setup: swift is not on PATH; install Swift 6.1 or later" >&2; exit 1; }
