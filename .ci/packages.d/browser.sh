#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver (and a font, so screenshots are legible), for the demo
# Idempotent: installs only what is missing, so a warm machine pays nothing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
for pkg in chromium chromium-driver fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
