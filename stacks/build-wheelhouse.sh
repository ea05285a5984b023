#!/usr/bin/env bash
# Build the buildpack's offline wheelhouse: wheels of the functions framework with all
# its extras (`runtime[all]`) and every dependency, plus the uv installer's wheel.
#
#   stacks/build-wheelhouse.sh BUILD_IMAGE RUNTIME_DIR OUT_DIR UV_VERSION
#
# Wheels are built inside the stack's build image so their ABI matches the Python that
# installs them. This is the only step that needs a package index; a buildpack build
# installs the framework from these wheels with no network.
#
# OUT_DIR gets wheels/ and a stamp keyed on the runtime's sources, the build image and
# UV_VERSION; with an up-to-date stamp the script does nothing.
#
# HOST_CA_BUNDLE (optional): a CA bundle to trust inside the container, e.g. when a
# TLS-intercepting proxy sits between this machine and the package index.
set -euo pipefail

build_image=$1 runtime_dir=$2 out_dir=$3 uv_version=$4

image_id=$(docker image inspect -f '{{.Id}}' "$build_image")
key=$(
  {
    cat "$0"
    echo "$image_id $uv_version"
    (cd "$runtime_dir" && find pyproject.toml src -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
)
stamp="$out_dir/.built-$key"
if [ -f "$stamp" ]; then
  echo "cached: wheelhouse $out_dir/wheels ($key)"
  exit 0
fi

rm -rf "$out_dir/wheels" "$out_dir"/.built-*
mkdir -p "$out_dir/wheels"

ca_args=()
if [ -n "${HOST_CA_BUNDLE:-}" ] && [ -r "$HOST_CA_BUNDLE" ]; then
  ca_args=(-v "$HOST_CA_BUNDLE:/tmp/host-ca.crt:ro" -e PIP_CERT=/tmp/host-ca.crt -e SSL_CERT_FILE=/tmp/host-ca.crt)
fi

echo "building wheels for runtime[all] and uv $uv_version in $build_image"
docker run --rm --network host \
  --user "$(id -u):$(id -g)" -e HOME=/tmp \
  "${ca_args[@]}" \
  -v "$(cd "$runtime_dir" && pwd):/src:ro" \
  -v "$(cd "$out_dir" && pwd)/wheels:/wheels" \
  -e UV_VERSION="$uv_version" -e SOURCE_DATE_EPOCH=315532800 \
  "$build_image" bash -euo pipefail -c '
    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install -q --disable-pip-version-check --upgrade "pip>=24" wheel
    cp -r /src /tmp/runtime
    rm -rf /tmp/runtime/build /tmp/runtime/src/*.egg-info
    # apache-skywalking 1.3.0 ships a broken wheel (no skywalking/protocol): build it from source
    /tmp/venv/bin/pip wheel -q --disable-pip-version-check --no-binary apache-skywalking \
      --wheel-dir /wheels "/tmp/runtime[all]"
    /tmp/venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
      --dest /wheels "uv==$UV_VERSION"
    python3 -c "import sys, zipfile, glob
for whl in glob.glob(\"/wheels/apache_skywalking-*.whl\"):
    names = zipfile.ZipFile(whl).namelist()
    if not any(n.startswith(\"skywalking/protocol/\") for n in names):
        sys.exit(f\"{whl} has no skywalking/protocol\")"
  '
touch "$stamp"
echo "wheelhouse: $(ls "$out_dir/wheels" | wc -l) wheels, $(du -sh "$out_dir/wheels" | cut -f1)"
