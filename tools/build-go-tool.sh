#!/usr/bin/env bash
# Build a Go command from its upstream module at a pinned version, into the tool cache.
#
#   tools/build-go-tool.sh MODULE VERSION OUTDIR PKG[=NAME] [PKG[=NAME] ...] [-- go build flags]
#
# The module's own go.mod/go.sum (with its replace directives) is copied into a
# throw-away wrapper module, so `go build` resolves exactly what upstream pins.
# Binaries land in OUTDIR; a stamp file makes a second call a no-op.
set -euo pipefail

module=$1 version=$2 outdir=$3; shift 3
pkgs=(); flags=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; flags=("$@"); break; fi
  pkgs+=("$1"); shift
done

stamp="$outdir/.built-$(echo "$module@$version ${pkgs[*]} ${flags[*]:-}" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  echo "cached: $module@$version in $outdir"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=${CGO_ENABLED:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "downloading $module@$version"
modjson=$(cd "$work" && go mod download -json "$module@$version")
gomod=$(printf '%s' "$modjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
moddir=$(printf '%s' "$modjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')

cp "$gomod" "$work/go.mod"
[ -f "$moddir/go.sum" ] && cp "$moddir/go.sum" "$work/go.sum"
chmod u+w "$work/go.mod" "$work/go.sum" 2>/dev/null || true
(
  cd "$work"
  go mod edit -module=ofn.local/toolwrapper -require="$module@$version"
  # the wrapper imports nothing itself; a tools file keeps `go mod` honest
  printf 'package toolwrapper\n' > wrapper.go
  mkdir -p "$outdir"
  for spec in "${pkgs[@]}"; do
    pkg=${spec%%=*}; name=${spec#*=}; [ "$name" = "$spec" ] && name=$(basename "$pkg")
    echo "building $pkg -> $outdir/$name"
    go build -mod=mod -trimpath "${flags[@]}" -o "$outdir/$name" "$pkg"
  done
)
touch "$stamp"
