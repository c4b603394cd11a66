#!/usr/bin/env bash
# Builds the base image that NODE_22 code-zip runtimes run in, tagged agentcore-local-runtime:node22,
# from the official node:22-slim image. Debian ships no Node.js 22, so without a reachable registry
# there is no way to build it here; the message says so.
# Usage: docker/node/build.sh 22 [--force]
set -euo pipefail
version="${1:-22}"
tag="agentcore-local-runtime:node${version}"
if [ "${2:-}" != "--force" ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already built"
  exit 0
fi
if timeout 60 docker pull "node:${version}-slim" >/dev/null 2>&1; then
  docker tag "node:${version}-slim" "$tag"
  echo "built $tag from node:${version}-slim"
  exit 0
fi
echo "cannot build $tag: no container registry is reachable to pull node:${version}-slim, and Debian has no Node.js ${version}. Run this where Docker Hub is reachable, or 'docker tag <an image with node ${version}> $tag'." >&2
exit 2
