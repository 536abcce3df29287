#!/usr/bin/env bash
# Start a Docker engine on this machine if none answers: install Debian's docker.io and
# docker-compose when missing, start dockerd in the background, wait until `docker info` works.
# Idempotent: safe to run again; does nothing when an engine already answers.
# Used by .ci/run, the README's commands and people alike.
set -euo pipefail

LOG=${SAGETWIN_DOCKERD_LOG:-/tmp/sagetwin-dockerd.log}
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if docker info >/dev/null 2>&1; then
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
echo "docker-engine: ready ($(docker info --format '{{.ServerVersion}}'), storage $(docker info --format '{{.Driver}}'))"
