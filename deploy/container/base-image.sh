#!/usr/bin/env bash
# Make the image's base, debian:bookworm-slim, locally when podman does not have it: base images
# cannot be pulled here, so debootstrap a minimal bookworm and `podman import` it under that name.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/container/env.sh
source deploy/container/env.sh
BASE_IMAGE="${1:-debian:bookworm-slim}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$BASE_IMAGE"; then
    exit 0
fi
command -v debootstrap >/dev/null || fail "$BASE_IMAGE is missing and debootstrap is not installed"
((EUID == 0)) || fail "$BASE_IMAGE is missing and making it with debootstrap needs root"
[[ "$BASE_IMAGE" == debian:bookworm* ]] || fail "can only make debian:bookworm images, not $BASE_IMAGE"

root="$(mktemp -d)"
# --one-file-system: never follow a mount debootstrap may have left behind (proc, sys, dev).
trap 'rm -rf --one-file-system "$root" "$root.log"' EXIT
echo "deploy/container: making $BASE_IMAGE with debootstrap from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; fail "debootstrap failed (its log's end is above)"; }
# Trim what the published slim image leaves out too.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" --one-file-system -c . | podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
echo "deploy/container: made $BASE_IMAGE"
