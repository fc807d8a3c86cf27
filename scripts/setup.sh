#!/usr/bin/env bash
# Set up ddpm-teach on a fresh machine: system packages (Debian/Ubuntu, when run as root or with
# sudo), a virtual environment in .venv with a matched torch/torchvision pair, the package and the
# test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "== apt: Fashion-MNIST (offline copy), Chromium (browser test), venv, tcmalloc (faster sampling)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq dataset-fashion-mnist chromium python3-venv libtcmalloc-minimal4 >/dev/null
  else
    echo "note: not root and no sudo; install 'dataset-fashion-mnist', 'chromium' and 'libtcmalloc-minimal4' with apt yourself, or use --download."
  fi
else
  echo "note: no apt-get; Fashion-MNIST will need a download (python -m ddpm_teach train --download) and the browser test needs Chromium."
fi

echo "== Python environment in .venv"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch and torchvision come from the same index as a matched pair (pip resolves torchvision's exact torch pin)
# dev: pytest, nbval, jupytext, JupyterLab, Playwright; bench: diffusers, the peer the benchmarks
# (benchmarks/*.py) measure against, so that their smoke tests run too
.venv/bin/python -m pip install -q -e ".[dev,bench]"
.venv/bin/python - <<'PY'
import torch, torchvision
print(f"torch {torch.__version__} + torchvision {torchvision.__version__}: OK; cuda available: {torch.cuda.is_available()}")
PY
# the notebooks' kernel starts with tcmalloc (or glibc tunables) as `python -m ddpm_teach` does: see ddpm_teach/allocator.py
KERNEL=.venv/share/jupyter/kernels/python3/kernel.json
[ -f "$KERNEL" ] && .venv/bin/python -m ddpm_teach.allocator "$KERNEL"
echo "== emoji images for notebook 12 (npm emoji-datasource-google 16.0.0, 74 MB, into ~/.cache/ddpm_teach/data)"
.venv/bin/python -m ddpm_teach data emoji --download \
  || echo "note: could not fetch the emoji source (needs registry.npmjs.org); notebook 12 needs it: run 'python -m ddpm_teach data emoji --download' later."
echo "== done. Open the course with:  .venv/bin/jupyter lab notebooks/"
