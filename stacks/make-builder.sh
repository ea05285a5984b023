#!/usr/bin/env bash
# Create the builder image with `pack builder create`, unless one built from the same
# inputs exists: the image carries a label with a hash of builder.toml, the staged
# buildpack, the lifecycle tarball and the build/run image IDs.
#
#   stacks/make-builder.sh PACK BUILDER_IMAGE BUILDER_TOML BUILD_IMAGE RUN_IMAGE
set -euo pipefail

pack=$1 builder=$2 config=$3 build_image=$4 run_image=$5
root=$(cd "$(dirname "$config")" && pwd)
label=org.openfunction.builder.inputs

for image in "$build_image" "$run_image"; do
  docker image inspect "$image" >/dev/null 2>&1 || { echo "error: $image missing; run make stacks" >&2; exit 1; }
done
[ -d "$root/out/buildpack" ] || { echo "error: out/buildpack missing; run make builder" >&2; exit 1; }
[ -f "$root/out/lifecycle.tgz" ] || { echo "error: out/lifecycle.tgz missing; run make builder" >&2; exit 1; }

inputs=$(
  {
    sha256sum "$0" "$config" "$root/out/lifecycle.tgz"
    (cd "$root/out/buildpack" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    docker image inspect -f '{{.Id}}' "$build_image" "$run_image"
  } | sha256sum | cut -c1-16
)
if [ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$builder" 2>/dev/null)" = "$inputs" ]; then
  echo "cached: builder $builder ($inputs)"
  exit 0
fi

"$pack" builder create "$builder" --config "$config" --pull-policy never --label "$label=$inputs"
echo "built builder $builder ($inputs)"
