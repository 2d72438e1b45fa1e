# shellcheck shell=bash
# Sourced by the scripts here: podman settings and a readable failure message.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"

fail() {
    echo "deploy/container: $*" >&2
    exit 1
}

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc)"
