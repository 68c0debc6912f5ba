#!/usr/bin/env bash
# Installs every Debian package intake's build and test suite need on a fresh Debian bookworm
# machine. Idempotent and non-interactive: packages already present are left alone, and apt is
# only asked when something is missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libpoppler-glib-dev libcairo2-dev libglib2.0-dev
  libtiff-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
  libyaml-dev libpcre2-dev libjansson-dev
  libsqlite3-dev libsystemd-dev libseccomp-dev libcurl4-openssl-dev
  poppler-utils python3 fontconfig fonts-dejavu-core
  libfuse3-dev fuse3 # the manual power-loss test (tests/powerloss)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "install-deps: all ${#packages[@]} packages present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
