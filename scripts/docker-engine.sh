#!/usr/bin/env bash
# Start a Docker engine on this machine if none answers: install Debian's docker.io and
# docker-compose when missing, start dockerd in the background, wait until `docker info` works.
# Idempotent: safe to run again; does nothing when an engine already answers.
# Used by .ci/run, the README's commands and people alike.
set -euo pipefail

LOG=${SAGETWIN_DOCKERD_LOG:-/tmp/sagetwin-dockerd.log}
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# Compose v2 (the `docker compose` plugin): local_gpu needs it, since the SDK writes a `deploy:` key
# that docker-compose v1 rejects. Debian bookworm ships only v1; Debian trixie's docker-compose
# package is the v2 plugin (a static Go binary), so it is fetched from trixie and installed beside
# Docker's other CLI plugins, leaving the system's apt sources as they are.
install_compose_v2() {
    if docker compose version 2>/dev/null | grep -Eq 'version v?2\.'; then return 0; fi
    echo "docker-engine: installing the docker compose v2 plugin from Debian trixie"
    local apt_dir plugin_dir
    apt_dir=$(mktemp -d)
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
                -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
    (cd "$apt_dir" && apt-get "${opts[@]}" -qq update && apt-get "${opts[@]}" -qq download docker-compose) >/dev/null
    dpkg -x "$apt_dir"/docker-compose_*.deb "$apt_dir/root"
    plugin_dir=/usr/libexec/docker/cli-plugins
    $SUDO mkdir -p "$plugin_dir"
    $SUDO install -m 0755 "$apt_dir/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
    rm -rf "$apt_dir"
    docker compose version
}

# tests/test_rootless_docker.py starts a rootless engine of its own as an unprivileged user: it
# needs rootlesskit and newuidmap/newgidmap (Debian's uidmap). dockerd-rootless.sh comes with
# docker.io. Under SAGETWIN_REQUIRE_DOCKER=1 (CI) that test fails when they are missing.
install_rootless_tools() {
    if command -v rootlesskit >/dev/null 2>&1 && command -v newuidmap >/dev/null 2>&1; then return 0; fi
    echo "docker-engine: installing rootlesskit and uidmap (rootless Docker)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends rootlesskit uidmap >/dev/null
}

if docker info >/dev/null 2>&1; then
    install_rootless_tools || echo "docker-engine: could not install rootlesskit/uidmap (the rootless Docker test needs them)" >&2
    install_compose_v2 || echo "docker-engine: could not install compose v2 (local_gpu needs it; CPU runs do not)" >&2
    echo "docker-engine: an engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
    echo "docker-engine: installing Debian's docker.io and docker-compose"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "docker-engine: starting dockerd (log: $LOG)"
    # No iptables and no default bridge in this sandbox; user-defined networks still work.
    $SUDO nohup dockerd --iptables=false --ip6tables=false --bridge=none >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then break; fi
        sleep 1
    done
fi

if ! docker info >/dev/null 2>&1; then
    echo "docker-engine: dockerd did not answer within 60 s; last lines of $LOG:" >&2
    tail -20 "$LOG" >&2 || true
    exit 1
fi
install_compose_v2 || echo "docker-engine: could not install compose v2 (local_gpu needs it; CPU runs do not)" >&2
install_rootless_tools || echo "docker-engine: could not install rootlesskit/uidmap (the rootless Docker test needs them)" >&2
echo "docker-engine: ready ($(docker info --format '{{.ServerVersion}}'), storage $(docker info --format '{{.Driver}}'))"
