#!/usr/bin/env bash
# Make the Debian bookworm base image for the stacks without pulling from a registry:
# debootstrap a minbase root file system from a Debian mirror and `docker import` it.
#
#   stacks/make-base.sh [IMAGE]          (default IMAGE: openfunction/debian-base:bookworm)
#
# MIRROR / SECURITY_MIRROR override the Debian mirrors; by default they are read from
# this machine's apt sources (falling back to deb.debian.org). Where a registry is
# reachable, skip this script and build the stacks with BASE_IMAGE=debian:bookworm-slim.
#
# The image carries a label with a hash of this recipe; when an image with the same
# hash exists the script does nothing, so calling it again is cheap.
set -euo pipefail

image=${1:-openfunction/debian-base:bookworm}
suite=bookworm

apt_uri() {  # first apt source URI whose path ends in $1 ("/debian" or "/debian-security")
  local want=$1 uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    while read -r uri; do
      uri=${uri%/}
      if [[ "$uri" == http*"$want" ]]; then echo "$uri"; return 0; fi
    done < <(sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f" | tr ' ' '\n')
  done
  return 1
}

MIRROR=${MIRROR:-$(apt_uri /debian || echo http://deb.debian.org/debian)}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uri /debian-security || echo http://deb.debian.org/debian-security)}

recipe=$( { cat "$0"; echo "$suite $MIRROR $SECURITY_MIRROR"; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "org.openfunction.stack.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  echo "cached: $image (recipe $recipe)"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (make system installs it)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: debootstrap needs root; run as root" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ofn-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "debootstrap --variant=minbase $suite from $MIRROR"
debootstrap --variant=minbase "$suite" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "error: debootstrap failed (mirror $MIRROR); set MIRROR=<a Debian mirror URL> to use another" >&2
  exit 1
}

# apt sources: the release, its updates and security updates
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $SECURITY_MIRROR $suite-security main
EOF

# Like Debian's slim images: dpkg skips docs, man pages and translations, and apt keeps no
# package lists or archives in image layers.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-ofn-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$rootfs/etc/apt/apt.conf.d/01-ofn-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
       "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
: >"$rootfs/etc/machine-id"
# the container engine provides these at run time
rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"

echo "importing $image"
tar --numeric-owner --xattrs -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.openfunction.stack.recipe=$recipe" \
  --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase from $MIRROR\"" \
  - "$image" >/dev/null
echo "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
