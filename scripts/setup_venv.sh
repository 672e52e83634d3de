#!/usr/bin/env bash
# Create the virtual environment VENV (default .venv) and install the project into it with EXTRAS.
#
# PyTorch is taken, in this order, from: a torch the system Python already has (the venv then sees the
# system site-packages), a local wheel pip can install without an index (find-links such as /opt/wheels,
# or PIP_FIND_LINKS), or PyTorch's CPU-only index. It never falls through to the default CUDA build.
set -euo pipefail
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}
SYSTEM_PYTHON=${PYTHON:-python3}

case ",$EXTRAS," in  # the test extra brings napari, whose viewer tests need Xvfb and OpenGL
    *,test,* | *,napari,*) "$(dirname "$0")/system_packages.sh" ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    if "$SYSTEM_PYTHON" -c "import torch" 2>/dev/null; then
        echo "setup: using the system's torch $("$SYSTEM_PYTHON" -c 'import torch; print(torch.__version__)')"
        "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$SYSTEM_PYTHON" -m venv "$VENV"
    fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if "${PIP[@]}" install --no-index --no-deps torch 2>/dev/null; then
        echo "setup: installed torch from a local wheel"
        "${PIP[@]}" install torch  # its own requirements; torch itself is satisfied and stays
    else
        echo "setup: no local torch wheel; installing the CPU build from PyTorch's index"
        "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
    fi
fi
# the project's requirements resolve against this torch: without the constraint, a test requirement that
# brings torchvision (segmentation-models-pytorch) would pull the newest torchvision and the torch it needs
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" > "$CONSTRAINTS"
"${PIP[@]}" install -e ".[${EXTRAS}]" -c "$CONSTRAINTS"
