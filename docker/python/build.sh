#!/usr/bin/env bash
# Builds the base image that code-zip runtimes of one Python version run in, tagged
# agentcore-local-runtime:python<X.Y>. Nothing is pulled when no registry is reachable:
#   1. if Docker can pull the official python:<X.Y>-slim image, that image is used;
#   2. otherwise a Debian root filesystem with that Python is made with debootstrap from Debian's
#      package archive and imported with `docker import` (needs root and debootstrap).
# Usage: docker/python/build.sh 3.11|3.13 [--force]
set -euo pipefail

version="${1:?usage: $0 <python version: 3.11 or 3.13> [--force]}"
tag="agentcore-local-runtime:python${version}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${2:-}" != "--force" ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already built"
  exit 0
fi

if timeout 60 docker pull "python:${version}-slim" >/dev/null 2>&1; then
  docker tag "python:${version}-slim" "$tag"
  echo "built $tag from python:${version}-slim"
  exit 0
fi

# Debian suites whose python3 is the wanted version.
case "$version" in
  3.11) suite=bookworm ;;
  3.13) suite=trixie ;;
  *)
    echo "no registry is reachable and Debian ships no Python $version; pull python:${version}-slim where a registry is reachable, then run this again" >&2
    exit 2
    ;;
esac

command -v debootstrap >/dev/null || { echo "debootstrap is required (apt-get install debootstrap)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 2; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "building $tag from Debian $suite packages (a minute or two)..."
debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$rootfs" "$mirror" >/tmp/agentcore-local-debootstrap.log 2>&1 \
  || { echo "debootstrap failed; see /tmp/agentcore-local-debootstrap.log" >&2; exit 1; }
test -x "$rootfs/usr/bin/python${version}" || { echo "Debian $suite did not provide python${version}" >&2; exit 1; }
# Trim what a runtime never uses.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
ln -sf "/usr/bin/python${version}" "$rootfs/usr/local/bin/python"
tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "built $tag from Debian $suite"
