# shellcheck shell=bash
# Sourced by the scripts here: podman settings and a readable failure message.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"

fail() {
    echo "deploy/container: $*" >&2
    exit 1
}

# CI starts from a clean machine: as root on Debian, install what is missing (the same list as the README's).
CONTAINER_TOOLS=(podman runc debootstrap uidmap fuse-overlayfs)
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "deploy/container: installing ${CONTAINER_TOOLS[*]} with apt-get" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${CONTAINER_TOOLS[@]}"; } >/dev/null \
            || fail "apt-get could not install ${CONTAINER_TOOLS[*]}"
    else
        fail "podman, runc and debootstrap are needed (apt-get install ${CONTAINER_TOOLS[*]})"
    fi
fi
