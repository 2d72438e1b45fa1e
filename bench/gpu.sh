#!/usr/bin/env bash
# Check every treecredit kernel against its float64 reference and time it (triton backend) on a
# CUDA machine, in well under 5 minutes. Usage: bench/gpu.sh   (from anywhere; uses .venv if present)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "bench/gpu.sh: no CUDA device visible to torch; run this on a GPU machine" >&2
    exit 2
fi
unset TRITON_INTERPRET
exec timeout 300 "$PY" bench/gpu.py "$@"
