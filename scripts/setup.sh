#!/usr/bin/env bash
# Install the system packages tidegate's build needs, when missing (Debian/Ubuntu).
#   cmake             pingora-core builds zlib-ng with it
#   protobuf-compiler etcd-client's build script runs protoc
#   g++               mlua's Luau sources (the Lua engine)
# Safe to run again: it installs only what is not there.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# extra packages a caller asks for: scripts/setup.sh nginx wrk ...
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is missing; install Rust (rustup)" >&2; exit 1; }
