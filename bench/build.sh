#!/usr/bin/env bash
# Build benchmark for the Python builder: cold and warm `pack build` of samples/hello,
# the runtime install with uv vs pip, time to the first response, and image sizes.
#
#   make builder && bench/build.sh [RUNS]        (RUNS warm builds, default 3)
#
# Prints a Markdown report and keeps a copy in bench/out/. Uses the images the Makefile
# builds (override with BUILDER_IMAGE, BUILD_IMAGE, RUN_IMAGE, PACK).
set -euo pipefail

runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OFN_CACHE:-$HOME/.cache/ofn-python}
PACK=${PACK:-${OFN_PACK:-$cache/bin/pack-v0.38.2/pack}}
BUILDER_IMAGE=${BUILDER_IMAGE:-openfunction/builder-python:latest}
BUILD_IMAGE=${BUILD_IMAGE:-openfunction/python-build:bookworm}
RUN_IMAGE=${RUN_IMAGE:-openfunction/python-run:bookworm}
image=ofn-bench/hello:latest
export PACK_VOLUME_KEY=${PACK_VOLUME_KEY:-ofn-python}

for img in "$BUILDER_IMAGE" "$BUILD_IMAGE" "$RUN_IMAGE"; do
  docker image inspect "$img" >/dev/null 2>&1 || { echo "error: $img missing; run make builder" >&2; exit 1; }
done
[ -x "$PACK" ] || { echo "error: pack missing at $PACK; run make tools" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
trap 'rm -rf "$work"; docker rm -f ofn-bench-run >/dev/null 2>&1 || true' EXIT
cp -r "$root/samples/hello" "$work/app"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.0f", $1 / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

build() {  # build [extra pack flags]; prints seconds
  local start end
  start=$(now)
  "$PACK" build "$image" --path "$work/app" --builder "$BUILDER_IMAGE" --trust-builder \
    --pull-policy never --network host "$@" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; exit 1; }
  end=$(now)
  secs "$start" "$end"
}

# cold: no previous image, no cache volumes
docker rmi -f "$image" >/dev/null 2>&1 || true
docker volume ls -q --filter "name=pack-cache-ofn-bench_hello_latest" | xargs -r docker volume rm >/dev/null
cold=$(build)
grep -q "Runtime: installing" "$work/pack.log" || { echo "error: the cold build reused a runtime layer" >&2; exit 1; }

# warm: nothing changed
warm_times=()
for _ in $(seq 1 "$runs"); do
  warm_times+=("$(build)")
  grep -q "Reusing layer 'openfunction/python-function:runtime'" "$work/pack.log" \
    || { echo "error: a warm build did not reuse the runtime layer" >&2; exit 1; }
done
warm=$(printf '%s\n' "${warm_times[@]}" | median)

# warm with an edited function (the usual inner loop)
echo "# edited" >>"$work/app/main.py"
edited=$(build)

# time from `docker run` to the first 200 response
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$(now)
docker run -d --rm --name ofn-bench-run --network host -e PORT="$port" "$image" >/dev/null
until curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do sleep 0.05; done
first_response=$(secs "$start" "$(now)")
docker rm -f ofn-bench-run >/dev/null

# the runtime layer's install: uv (what the buildpack uses) vs pip, in the build image
wheels="$cache/wheelhouse/wheels"
installer() {  # installer uv|pip; prints seconds
  docker run --rm --network none --user "$(id -u):$(id -g)" -e HOME=/tmp -v "$wheels:/wheels:ro" \
    -v "$root/out/buildpack/tools/uv:/usr/local/bin/uv:ro" "$BUILD_IMAGE" bash -c '
      start=$(date +%s.%N)
      if [ "$1" = uv ]; then
        uv venv -q --python /usr/bin/python3 /tmp/v
        UV_PYTHON_DOWNLOADS=never SOURCE_DATE_EPOCH=315532801 uv pip install -q --python /tmp/v/bin/python \
          --no-index --find-links /wheels --no-cache --link-mode copy --compile-bytecode "openfunction-functions-framework[all]"
      else
        python3 -m venv /tmp/v
        SOURCE_DATE_EPOCH=315532801 /tmp/v/bin/pip install -q --no-index --find-links /wheels --no-cache-dir \
          "openfunction-functions-framework[all]"
      fi
      awk -v a="$start" -v b="$(date +%s.%N)" "BEGIN { printf \"%.1f\", b - a }"' _ "$1"
}
uv_times=() pip_times=()
for _ in 1 2 3; do  # interleaved, medians
  uv_times+=("$(installer uv)")
  pip_times+=("$(installer pip)")
done
uv_time=$(printf '%s\n' "${uv_times[@]}" | median)
pip_time=$(printf '%s\n' "${pip_times[@]}" | median)

runtime_layer=$(docker image inspect -f '{{index .Config.Labels "io.buildpacks.lifecycle.metadata"}}' "$image" \
  | python3 -c 'import json,sys; m=json.load(sys.stdin); print([l for b in m["buildpacks"] for n,l in b["layers"].items() if n=="runtime"][0]["sha"])')
runtime_mb=$(docker run --rm --entrypoint du "$image" -sm /layers/openfunction_python-function/runtime | cut -f1)

report=$(cat <<EOF
| measurement (samples/hello, $(nproc) CPUs) | value |
|---|---|
| cold \`pack build\` (no previous image, empty cache) | ${cold} s |
| warm \`pack build\`, nothing changed (median of $runs) | ${warm} s |
| warm \`pack build\`, main.py edited | ${edited} s |
| \`docker run\` to first HTTP 200 | ${first_response} s |
| runtime layer install, uv (buildpack; median of 3, interleaved with pip) | ${uv_time} s |
| runtime layer install, pip (for comparison; median of 3) | ${pip_time} s |
| run image \`$RUN_IMAGE\` | $(mb "$RUN_IMAGE") MB |
| build image \`$BUILD_IMAGE\` | $(mb "$BUILD_IMAGE") MB |
| builder \`$BUILDER_IMAGE\` | $(mb "$BUILDER_IMAGE") MB |
| final image \`$image\` | $(mb "$image") MB |
| runtime layer on disk (${runtime_layer:7:12}) | ${runtime_mb} MB |

pack $("$PACK" version), $(docker version --format 'Docker engine {{.Server.Version}}'), $(date -u +%Y-%m-%d); load average at start ${load_start}, at end $(cut -d' ' -f1-3 /proc/loadavg).
EOF
)
echo "$report"
mkdir -p "$root/bench/out"
echo "$report" >"$root/bench/out/build-$(date -u +%Y%m%dT%H%M%SZ).md"
