#!/usr/bin/env bash
# Make sure the system pieces the demo and the test suite need are present:
# Debian packages (Docker engine, debootstrap, Redis, Mosquitto, a local registry, wrk)
# and a running Docker engine. Idempotent; installs only as root, otherwise says what to run.
#
#   scripts/ensure-system.sh          everything `make test` needs (the default)
#   scripts/ensure-system.sh build    only what building the builder and `make demo` need
set -euo pipefail

case "${1:-test}" in
  test)
    packages=(docker.io debootstrap redis-server mosquitto mosquitto-clients docker-registry wrk)
    commands=(dockerd debootstrap redis-server mosquitto mosquitto_sub docker-registry wrk) ;;
  build)
    packages=(docker.io debootstrap)
    commands=(dockerd debootstrap) ;;
  *)
    echo "error: unknown profile '$1'" >&2
    echo "fix:   run 'scripts/ensure-system.sh' (everything make test needs) or 'scripts/ensure-system.sh build'" >&2
    exit 2 ;;
esac

missing=()
for i in "${!commands[@]}"; do
  command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
for tool in git make curl; do command -v $tool >/dev/null 2>&1 || missing+=($tool); done
command -v go >/dev/null 2>&1 || missing+=(golang-go)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing system packages: ${missing[*]}" >&2
    echo "fix:   sudo apt-get install -y ${missing[*]}   (or run this command as root)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Go toolchain builds pack, the lifecycle and daprd; it must be recent enough.
gov=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
if ! printf '1.24\n%s\n' "$gov" | sort -V -C; then
  echo "error: Go >= 1.24 is needed to build pack, the CNB lifecycle and daprd (found: ${gov:-none})" >&2
  exit 1
fi

# Debian's Redis and Mosquitto start system services on install; the tests run their own
# instances on free loopback ports, so the system ones are left as they are.

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: no Docker engine is running; start one (sudo dockerd --bridge=none --iptables=false &)" >&2
    exit 1
  fi
  echo "starting dockerd (host networking only)"
  mkdir -p /var/log
  nohup dockerd --bridge=none --iptables=false >/var/log/ofn-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see /var/log/ofn-dockerd.log" >&2; exit 1; }
fi
echo "system ready: $(docker version --format 'docker {{.Server.Version}}') $(go env GOVERSION)"
