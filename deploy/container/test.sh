#!/usr/bin/env bash
# Run the image with host networking on free ports, wait for its HEALTHCHECK to pass, Score a forest
# through the SDK from the host, then remove the container (on failure too). Usage: test.sh TAG [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/container/env.sh
source deploy/container/env.sh
TAG="${1:-treecredit:cpu}"
PYTHON="${2:-python3}"
START_SECONDS="${START_SECONDS:-120}"

podman image exists "$TAG" || fail "no image $TAG: run make image first"
read -r port metrics_port < <("$PYTHON" -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
name="treecredit-test-$$"
podman_log="$(mktemp)"

cleanup() {
    podman rm --force --time 15 "$name" >>"$podman_log" 2>&1 || true
    rm -f "$podman_log"
}
trap cleanup EXIT
show_and_fail() {
    echo "--- container log ($name) ---" >&2
    podman logs "$name" >&2 2>&1 || true
    echo "--- podman ---" >&2
    cat "$podman_log" >&2
    fail "$*"
}

echo "deploy/container: running $TAG on 127.0.0.1:$port"
# --health-interval disable: no systemd timer here; the test runs the check itself.
podman run --detach --name "$name" --network host --health-interval disable \
    --env TREECREDIT_PORT="$port" --env TREECREDIT_METRICS_PORT="$metrics_port" \
    "$TAG" >>"$podman_log" 2>&1 || show_and_fail "podman run $TAG failed"

deadline=$((SECONDS + START_SECONDS))
until podman healthcheck run "$name" >>"$podman_log" 2>&1; do
    state="$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo gone)"
    [[ "$state" == running ]] || show_and_fail "the container stopped ($state) before it was healthy"
    ((SECONDS < deadline)) || show_and_fail "not healthy after ${START_SECONDS}s"
    sleep 1
done
echo "deploy/container: healthy after ${SECONDS}s (HEALTHCHECK: python -m treecredit_server.probe)"

"$PYTHON" deploy/container/check.py "127.0.0.1:$port" || show_and_fail "Score through the SDK failed"
echo "deploy/container: $TAG passed"
