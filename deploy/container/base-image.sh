#!/usr/bin/env bash
# Make the image's base, debian:bookworm-slim, locally when podman does not have it: base images
# cannot be pulled here, so debootstrap a minimal bookworm and `podman import` it under that name.
set -euo pipefail
source "$(dirname "$0")/env.sh"
BASE_IMAGE="${1:-debian:bookworm-slim}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$BASE_IMAGE"; then
    exit 0
fi
command -v debootstrap >/dev/null || fail "$BASE_IMAGE is missing and debootstrap is not installed"
[[ "$BASE_IMAGE" == debian:bookworm* ]] || fail "can only make debian:bookworm images, not $BASE_IMAGE"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "deploy/container: making $BASE_IMAGE with debootstrap from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -f "$root.log"; fail "debootstrap failed (see above)"; }
rm -f "$root.log"
# Trim what the published slim image leaves out too.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
echo "deploy/container: made $BASE_IMAGE"
