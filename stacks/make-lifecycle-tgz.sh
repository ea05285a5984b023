#!/usr/bin/env bash
# Package lifecycle binaries built from source the way the lifecycle's own release
# tarball is laid out, so `pack builder create` can take it as [lifecycle] uri:
#
#   lifecycle.toml                 descriptor: supported Buildpack/Platform APIs, version
#   lifecycle/lifecycle            the multi-call binary
#   lifecycle/launcher
#   lifecycle/{detector,analyzer,restorer,builder,exporter,rebaser,creator,extender} -> lifecycle
#   lifecycle/{lifecycle,launcher}.sbom.{cdx,spdx,syft}.json   their SBOMs (stacks/go-sbom.py)
#
#   stacks/make-lifecycle-tgz.sh BIN_DIR VERSION MODULE_DIR OUT.tgz
#
# BIN_DIR holds `lifecycle` and `launcher` (tools/build-go-tool.sh output); MODULE_DIR is
# the lifecycle's Go module source (for the lifecycle.toml template and api/apis.go,
# which list the API versions). Does nothing when OUT.tgz is newer than its inputs.
set -euo pipefail

bin_dir=$1 version=$2 module_dir=$3 out=$4

if [ -f "$out" ] && [ "$out" -nt "$bin_dir/lifecycle" ] && [ "$out" -nt "$bin_dir/launcher" ] && [ "$out" -nt "$0" ] \
   && [ "$out" -nt "$(dirname "$0")/go-sbom.py" ]; then
  echo "cached: $out"
  exit 0
fi
for f in lifecycle launcher; do
  [ -x "$bin_dir/$f" ] || { echo "error: $bin_dir/$f missing; run make tools" >&2; exit 1; }
done
for f in lifecycle.toml api/apis.go; do
  [ -f "$module_dir/$f" ] || { echo "error: $module_dir/$f missing (lifecycle module source)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lifecycle"
cp "$bin_dir/lifecycle" "$bin_dir/launcher" "$work/lifecycle/"
chmod 0755 "$work/lifecycle/lifecycle" "$work/lifecycle/launcher"
for phase in detector analyzer restorer builder exporter rebaser creator extender; do
  ln -s lifecycle "$work/lifecycle/$phase"
done
# SBOMs of the two binaries (the exporter adds them to images), from their Go build info
for binary in lifecycle launcher; do
  python3 "$(dirname "$0")/go-sbom.py" "$bin_dir/$binary" "$binary" "$version" "$work/lifecycle"
done

# Fill the module's descriptor template with the API lists from api/apis.go, as the
# lifecycle's packager does.
python3 - "$module_dir" "$version" "$work/lifecycle.toml" <<'EOF'
import re, sys
module_dir, version, out = sys.argv[1:]
apis = open(f"{module_dir}/api/apis.go", encoding="utf-8").read()

def lists(name):
    m = re.search(name + r'\s*=\s*newApisMustParse\(\[\]string\{([^}]*)\},\s*\[\]string\{([^}]*)\}\)', apis)
    if not m:
        sys.exit(f"cannot find the {name} API list in api/apis.go")
    fmt = lambda s: "[" + ", ".join(re.findall(r'"[^"]+"', s)) + "]"
    return fmt(m.group(1)), fmt(m.group(2))

bp_supported, bp_deprecated = lists("Buildpack")
pf_supported, pf_deprecated = lists("Platform")
values = {
    "lifecycle_version": version,
    "apis_buildpack_supported": bp_supported,
    "apis_buildpack_deprecated": bp_deprecated,
    "apis_platform_supported": pf_supported,
    "apis_platform_deprecated": pf_deprecated,
    "sbom_formats": '["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.syft+json"]',
}
template = open(f"{module_dir}/lifecycle.toml", encoding="utf-8").read()
text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values[m.group(1)], template)
if "{{" in text:
    sys.exit("unfilled placeholder in lifecycle.toml template")
open(out, "w", encoding="utf-8").write(text)
EOF

mkdir -p "$(dirname "$out")"
tar --owner=0 --group=0 --numeric-owner --mtime='1980-01-01 00:00:01Z' --sort=name \
  -C "$work" -czf "$out.tmp" lifecycle.toml lifecycle
mv "$out.tmp" "$out"
echo "lifecycle $version -> $out"
