#!/usr/bin/env bash
# Assemble the buildpack directory that `pack builder create` packages:
#
#   OUT/buildpack.toml, OUT/bin/, OUT/ofn_buildpack/   the buildpack itself (from the repo)
#   OUT/wheelhouse/*.whl                               runtime[all] wheels for offline installs
#   OUT/tools/uv                                       the installer, from uv's wheel
#
#   stacks/stage-buildpack.sh REPO_DIR WHEELS_DIR OUT
set -euo pipefail

repo=$1 wheels=$2 out=$3

uv_wheel=$(ls "$wheels"/uv-*.whl 2>/dev/null | head -n 1 || true)
[ -n "$uv_wheel" ] || { echo "error: no uv wheel in $wheels; run make wheels" >&2; exit 1; }
ls "$wheels"/openfunction_functions_framework-*.whl >/dev/null 2>&1 \
  || { echo "error: no framework wheel in $wheels; run make wheels" >&2; exit 1; }

mkdir -p "$out"
rm -rf "$out/bin" "$out/ofn_buildpack" "$out/wheelhouse.new" "$out/tools.new"
cp "$repo/buildpack.toml" "$out/"
cp -r "$repo/bin" "$repo/ofn_buildpack" "$out/"
find "$out/ofn_buildpack" -name __pycache__ -prune -exec rm -rf {} +

# wheels: everything but the installer, which the buildpack runs as a binary
mkdir -p "$out/wheelhouse.new"
find "$wheels" -maxdepth 1 -name '*.whl' ! -name 'uv-*.whl' -exec cp {} "$out/wheelhouse.new/" \;
rm -rf "$out/wheelhouse" && mv "$out/wheelhouse.new" "$out/wheelhouse"

mkdir -p "$out/tools.new"
python3 - "$uv_wheel" "$out/tools.new/uv" <<'PY'
import shutil, sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(name) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
chmod 0755 "$out/tools.new/uv"
rm -rf "$out/tools" && mv "$out/tools.new" "$out/tools"
chmod -R a+rX "$out"
echo "buildpack staged in $out ($(du -sh "$out" | cut -f1))"
