#!/usr/bin/env bash
# Docker engine lifecycle for the offline end-to-end tests.
#
#   tests/e2e/docker.sh up     install docker.io + debootstrap if missing, start dockerd if not running
#   tests/e2e/docker.sh down   remove every container and network labelled prescaler-e2e=1,
#                              stop dockerd only if `up` started it
#   tests/e2e/docker.sh status print what is running
#
# Both are idempotent. The pid file under .e2e-cache/ records that *we* started dockerd, so a
# developer's own engine is never stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${E2E_CACHE:-$ROOT/.e2e-cache}"
LABEL="prescaler-e2e=1"
PIDFILE="$CACHE/dockerd.pid"
LOG="$CACHE/dockerd.log"
DATA_ROOT="${E2E_DOCKER_DATA_ROOT:-/var/lib/docker}"

log() { printf '[e2e docker] %s\n' "$*" >&2; }

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else log "need root (or sudo) to install/start docker"; exit 1; fi
  else
    SUDO=""
  fi
}

engine_ok() { timeout 10 docker info >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v iptables >/dev/null || missing+=(iptables)
  ((${#missing[@]})) || return 0
  need_root
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be absent on a fresh machine: update first, once.
  if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >"$CACHE/apt.log" 2>&1; then
    $SUDO apt-get update -q >>"$CACHE/apt.log" 2>&1
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$CACHE/apt.log" 2>&1 \
      || { tail -n 30 "$CACHE/apt.log" >&2; exit 1; }
  fi
}

start_dockerd() {
  if engine_ok; then
    log "docker engine already running (not ours unless $PIDFILE says so)"
    return 0
  fi
  need_root
  local containerd_sock=""
  log "starting dockerd (log: $LOG)"
  # Debian's dockerd starts its own containerd when none is given. setsid so that a Ctrl-C of the
  # calling shell does not kill it before `down` can stop it cleanly.
  setsid $SUDO dockerd --data-root "$DATA_ROOT" --host unix:///var/run/docker.sock \
    --pidfile "$CACHE/dockerd.self.pid" >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 60); do
    if engine_ok; then log "dockerd up after ${i}s"; return 0; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      log "dockerd exited; last lines of its log:"; tail -n 30 "$LOG" >&2; rm -f "$PIDFILE"; exit 1
    fi
    sleep 1
  done
  log "dockerd did not answer within 60s; last lines of its log:"; tail -n 30 "$LOG" >&2
  exit 1
}

cmd_up() {
  mkdir -p "$CACHE"
  install_packages
  start_dockerd
}

cmd_down() {
  if engine_ok; then
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" || true)
    if [[ -n $ids ]]; then
      log "removing containers: $(echo $ids)"
      docker rm -f $ids >/dev/null || true
    fi
    # sam local invoke starts containers of its own; it removes them, but a killed run may not.
    ids=$(docker ps -aq --filter "network=${E2E_NETWORK:-prescaler-e2e}" || true)
    [[ -z $ids ]] || docker rm -f $ids >/dev/null || true
    ids=$(docker network ls -q --filter "label=$LABEL" || true)
    if [[ -n $ids ]]; then
      log "removing networks: $(echo $ids)"
      docker network rm $ids >/dev/null || true
    fi
  fi
  if [[ -f $PIDFILE ]]; then
    local pid children
    pid=$(cat "$PIDFILE")
    # Only a live dockerd: a stale pid file may name a pid that now belongs to something else.
    if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
      # Debian's dockerd runs a containerd of its own as a child: note it before dockerd goes.
      children=$(pgrep -P "$pid" || true)
      log "stopping dockerd (pid $pid, started by up)"
      kill -TERM "$pid" 2>/dev/null || true
      local i c
      for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then log "dockerd ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
      for c in $children; do
        for i in $(seq 1 10); do kill -0 "$c" 2>/dev/null || break; sleep 1; done
        kill -0 "$c" 2>/dev/null && kill -TERM "$c" 2>/dev/null || true
      done
    fi
    rm -f "$PIDFILE"
  fi
}

cmd_status() {
  if engine_ok; then
    docker version --format 'client {{.Client.Version}} / engine {{.Server.Version}}'
    docker ps -a --filter "label=$LABEL"
    docker network ls --filter "label=$LABEL"
  else
    echo "no docker engine"
  fi
  [[ -f $PIDFILE ]] && echo "dockerd started by e2e: pid $(cat "$PIDFILE")" || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
