#!/usr/bin/env bash
# Build the action's image with podman on a machine without a Docker engine or a reachable registry.
# The base image cannot be pulled here, so a stand-in for python:3.11-slim-bookworm is made from Debian
# packages (debootstrap minbase, as the official slim images are; its Python is Debian's 3.11 in
# /usr/bin rather than /usr/local/bin, which the Dockerfile's venv hides) and put on the Dockerfile's
# `FROM ... AS base` line in a copy of it, since a local image cannot carry the pinned digest. Where the
# registry answers, the pinned base itself is pulled and the Dockerfile is used as it is.
# Usage: scripts/build-image.sh IMAGE_TAG   (needs root, podman, runc, debootstrap)
set -euo pipefail
tag=${1:-localhost/ecr-bootstrap:dev}
here=$(cd "$(dirname "$0")/.." && pwd)
work=${CONTAINER_WORK:-/tmp/ecr-bootstrap-ctr}
mkdir -p "$work"
P=(podman --root "$work/root" --runroot "$work/run" --runtime runc)
pinned=$(sed -n 's/^FROM \(python:[^ ]*\) AS base$/\1/p' "$here/Dockerfile")
[ -n "$pinned" ] || { echo "no 'FROM python:... AS base' line in the Dockerfile" >&2; exit 1; }
dockerfile="$here/Dockerfile"
if timeout 60 "${P[@]}" pull -q "docker.io/library/$pinned" >/dev/null 2>&1; then
  base=""  # the real, digest-pinned base
else
  # No registry: a stand-in with the same tag (a digest cannot be given to a local image).
  base=localhost/python:3.11-slim-bookworm-standin
  dockerfile="$work/Dockerfile.standin"
  sed "s|^FROM python:[^ ]* AS base\$|FROM $base AS base|" "$here/Dockerfile" >"$dockerfile"
fi
if [ -n "$base" ] && ! "${P[@]}" image exists "$base"; then
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  tar -C "$work/rootfs" -c . | "${P[@]}" import - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi
"${P[@]}" build --pull=never --isolation=chroot --network=host -f "$dockerfile" \
  -v /etc/ssl/certs:/etc/ssl/certs:ro -t "$tag" "$here" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; exit 1; }
echo "built $tag"
