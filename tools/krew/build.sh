#!/usr/bin/env bash
# The krew plugin archive of a release and its manifest (docs/cli.md#krew).
#
#   GITHUB_REPOSITORY=OWNER/NAME tools/krew/build.sh VERSION [OUTDIR]     (OUTDIR: dist/krew)
#
# Writes OUTDIR/kubectl-flotilla_vVERSION.tar.gz (the launcher tools/krew/kubectl-flotilla with
# VERSION filled in, and LICENSE) and OUTDIR/flotilla.yaml: plugins/flotilla.yaml with the
# version, the repository's URL, the GitHub release asset's URL and the archive's sha256 filled
# in. The release workflow sets GITHUB_REPOSITORY and uploads both; the manifest is what
# krew-index (or `kubectl krew install --manifest=flotilla.yaml --archive=...`) takes. The
# archive is byte-for-byte reproducible.
set -euo pipefail
version=${1:?usage: tools/krew/build.sh VERSION [OUTDIR]}
version=${version#v}
out=${2:-dist/krew}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=v$version
name=kubectl-flotilla_$tag.tar.gz
[[ ${GITHUB_REPOSITORY:-} == */* ]] || { echo "set GITHUB_REPOSITORY=OWNER/NAME (where the release is)" >&2; exit 2; }
homepage=https://github.com/$GITHUB_REPOSITORY
base=$homepage/releases/download/$tag

mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
sed "s/@VERSION@/$version/g" "$repo/tools/krew/kubectl-flotilla" > "$stage/kubectl-flotilla"
chmod 0755 "$stage/kubectl-flotilla"
cp "$repo/LICENSE" "$stage/LICENSE"
chmod 0644 "$stage/LICENSE"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf - kubectl-flotilla LICENSE \
  | gzip -n -9 > "$out/$name"
sha=$(sha256sum "$out/$name" | cut -d' ' -f1)
sed -e "s|@VERSION@|$tag|g" -e "s|@HOMEPAGE@|$homepage|g" -e "s|@URI@|$base/$name|g" -e "s|@SHA256@|$sha|g" \
  "$repo/plugins/flotilla.yaml" > "$out/flotilla.yaml"
echo "$out/$name $sha"
echo "$out/flotilla.yaml"
