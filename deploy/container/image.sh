#!/usr/bin/env bash
# Build the CPU image with podman, offline: the base from base-image.sh, torch and the server's
# dependencies from the wheelhouse deploy/container/wheels/ (filled here with the host's pip, which
# takes torch's CPU build from local disk), nothing pulled. Usage: image.sh TAG [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/container/env.sh
source deploy/container/env.sh
TAG="${1:-treecredit:cpu}"
PYTHON="${2:-python3}"
TORCH="${TORCH:-torch==2.13.0}"
WHEELS=deploy/container/wheels

deploy/container/base-image.sh debian:bookworm-slim

# Wheels the image can load (bookworm: CPython 3.11, glibc 2.36), whatever Python the host runs.
echo "deploy/container: filling the wheelhouse $WHEELS"
platforms=()
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
requirements="$("$PYTHON" deploy/container/requirements.py --build-system)"
mapfile -t requirements <<<"$requirements"
"$PYTHON" -m pip download --quiet --dest "$WHEELS" --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" \
    "$TORCH" "${requirements[@]}" || fail "could not fill the wheelhouse $WHEELS (see pip's message above)"

echo "deploy/container: building $TAG"
podman build --pull=never --network host --format docker --tag "$TAG" \
    --build-arg TORCH="$TORCH" --build-arg PIP_NO_INDEX=1 . || fail "podman build of $TAG failed (see above)"
echo "deploy/container: built $TAG"
