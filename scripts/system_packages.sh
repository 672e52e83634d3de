#!/usr/bin/env bash
# Debian packages napari needs to open a real viewer without a screen: Xvfb (an X server in memory), Mesa's
# OpenGL (vispy needs an OpenGL context; QT_QPA_PLATFORM=offscreen alone has none) and the X / Qt libraries.
# Installs the missing ones when run as root on Debian / Ubuntu; otherwise says what to install and exits 0,
# so that a user without root still gets the environment (only the napari tests then skip).
set -euo pipefail
PACKAGES=(
    xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
    libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1
)
if ! command -v dpkg-query >/dev/null; then
    echo "setup: not a Debian system; for the napari tests install Xvfb, Mesa OpenGL and the Qt xcb libraries"
    exit 0
fi
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup: the napari tests need these Debian packages; as root run:"
    echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 0
fi
echo "setup: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
