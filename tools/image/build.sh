#!/usr/bin/env bash
# Build the Flotilla operator's OCI image without a container daemon or a registry, then check it.
#
# What the Dockerfile does with `docker build`, done here from Debian's packages and PyPI:
#   1. wheel    - `pip wheel` of this checkout (pure Python, like the Dockerfile's `wheel` stage);
#   2. venv     - a throwaway Debian bookworm root (mmdebstrap) in which `python3 -m venv
#                 /opt/flotilla` gets the wheel and its runtime dependencies from PyPI (binary
#                 wheels only), as the Dockerfile's `venv` stage does; only /opt/flotilla is kept;
#   3. base     - a runtime root made of Debian bookworm's python3.11 and the libraries it needs,
#                 extracted (mmdebstrap --variant=extract: no maintainer scripts, no shell, no
#                 package manager, like Google's distroless images), plus a CA bundle, tzdata,
#                 /etc/passwd with the non-root user 65532, an empty /tmp;
#   4. image    - umoci (built from its Go module by tools/rig-bin/build.sh umoci) puts the two
#                 layers into an OCI image layout and sets the entrypoint, user, env and the
#                 org.opencontainers.image.* labels;
#   5. check    - tools/image/check.sh unpacks it and runs its entrypoint as uid 65532 on a
#                 read-only root (skip with --no-check).
#
# Output: dist/image/oci (an OCI image layout, tag = the package version) and dist/image/IMAGE
# (name, digest, size). Push or load it with any OCI tool, e.g.
#   skopeo copy oci:dist/image/oci:TAG docker://ghcr.io/OWNER/flotilla:TAG   (TAG: see dist/image/IMAGE)
#   skopeo copy oci:dist/image/oci:TAG docker-archive:flotilla.tar:flotilla:TAG  (docker load -i)
#
# Needs: root (mmdebstrap and chroot), Debian's mmdebstrap (installed with apt-get if missing),
# go (for umoci), python3 with pip, and network access to Debian's archive and PyPI.
# Builds for this machine's architecture only; the multi-arch image comes from the Dockerfile.
#
# Usage: tools/image/build.sh [--no-check]
#   FLOTILLA_IMAGE_OUT   output directory (default dist/image)
#   FLOTILLA_IMAGE_WORK  scratch directory (default build/image; removed and recreated)
#   DEBIAN_MIRROR        Debian archive (default http://deb.debian.org/debian)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${FLOTILLA_IMAGE_OUT:-$repo/dist/image}
work=${FLOTILLA_IMAGE_WORK:-$repo/build/image}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
check=1
for arg in "$@"; do
  case "$arg" in
    --no-check) check=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

start_all=$(date +%s)
step_start=$start_all
log() { printf '[image %4ss] %s\n' "$(( $(date +%s) - start_all ))" "$*" >&2; }
step() { step_start=$(date +%s); log "$*"; }
done_step() { log "  ... $1 in $(( $(date +%s) - step_start ))s"; }

if [[ $(id -u) -ne 0 ]]; then
  log "ERROR: run as root: mmdebstrap builds the roots in root mode and the venv stage runs in a chroot"
  exit 1
fi
if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
fi

py=$repo/.venv/bin/python
[[ -x $py ]] || py=$(command -v python3)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain -- src pyproject.toml 2>/dev/null) ]]; then
  log "note: src/ or pyproject.toml has uncommitted changes; they are in the image (revision label: $revision)"
fi
source_url=$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)
created=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
arch=$(dpkg --print-architecture)

# umoci, built from its Go module and cached like the rig's binaries.
bash "$repo/tools/rig-bin/build.sh" umoci
umoci=${FLOTILLA_RIG_CACHE:-$HOME/.cache/flotilla-rig}/umoci-$(sed -n 's/^UMOCI_VERSION=//p' "$repo/tools/rig-bin/versions.env")/umoci

rm -rf "$work"
mkdir -p "$work" "$out"

# --- 1. wheel -------------------------------------------------------------------------------
step "1/5 wheel: pip wheel $repo"
"$py" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel=$(ls "$work"/dist/flotilla_scheduler-*.whl)
# The package version (from git tags, hatch-vcs) is the wheel's: name-version-py3-none-any.whl.
version=$(basename "$wheel" | cut -d- -f2)
tag=${version//+/-}  # an OCI tag has no '+' (0.1.dev5+gabc -> 0.1.dev5-gabc)
done_step "$(basename "$wheel")"

# --- 2. venv: /opt/flotilla built in a throwaway Debian root -------------------------------
# The same commands as the Dockerfile's venv stage. pip in the chroot trusts this machine's CA
# bundle (which may hold a proxy's CA); the bundle stays in the throwaway root, not in the image.
step "2/5 venv: mmdebstrap $suite (python3-venv) + pip install the wheel into /opt/flotilla"
cp /etc/ssl/certs/ca-certificates.crt "$work/build-ca.crt"
pip_env="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CERT=/tmp/build-ca.crt \
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore"
# shellcheck disable=SC2016  # "$1" is the hooks' argument (the root being built)
mmdebstrap --quiet --variant=apt --include=python3-venv,python3-pip,ca-certificates \
  --customize-hook="copy-in $wheel $work/build-ca.crt /tmp" \
  --customize-hook='chroot "$1" python3 -m venv --without-pip /opt/flotilla' \
  --customize-hook="chroot \"\$1\" $pip_env python3 -m pip --python /opt/flotilla/bin/python install \
--quiet --only-binary=:all: /tmp/$(basename "$wheel")" \
  --customize-hook="tar -C \"\$1\" --sort=name --numeric-owner -cf $work/app.tar opt/flotilla" \
  "$suite" /dev/null "$mirror"
done_step "app layer $(du -h "$work/app.tar" | cut -f1)"

# --- 3. base: python3.11 and its libraries, extracted, no shell --------------------------------
step "3/5 base: mmdebstrap --variant=extract $suite python3.11 (no shell, no package manager)"
rootfs=$work/rootfs
# readline-common (via libreadline8) depends on "dpkg | install-info": naming install-info keeps
# dpkg (and tar, perl-base) out. ca-certificates, tzdata and base-files are extracted without
# their dependencies (debconf, perl): only their files are needed. Every extracted package gets
# a /var/lib/dpkg/status.d entry, as in distroless images, so image scanners can list them.
extra_debs="ca-certificates tzdata base-files"
# shellcheck disable=SC2016  # "$1" is the hooks' argument (the root being built)
mmdebstrap --quiet --variant=extract \
  --include=python3.11-minimal,libpython3.11-stdlib,netbase,install-info \
  --extract-hook="cd \"\$1/var/cache/apt/archives\" && APT_CONFIG=\"\$MMDEBSTRAP_APT_CONFIG\" \
apt-get download -q=2 -o APT::Sandbox::User=root $extra_debs && for p in $extra_debs; do dpkg-deb --extract \"\$p\"_*.deb \"\$1\"; done" \
  --extract-hook='mkdir -p "$1/var/lib/dpkg/status.d" && for f in "$1"/var/cache/apt/archives/*.deb; do
p=$(dpkg-deb --field "$f" Package); dpkg-deb --field "$f" > "$1/var/lib/dpkg/status.d/$p"; done' \
  "$suite" "$rootfs" "$mirror"
(
  cd "$rootfs"
  # What dpkg and the maintainer scripts would have done, minus what a container does not need.
  rm -rf dev/* var/cache/apt var/lib/apt etc/apt usr/share/man usr/share/info usr/share/locale \
    usr/share/lintian
  find var/lib/dpkg -mindepth 1 -maxdepth 1 -not -name status.d -exec rm -rf {} +
  find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
  ln -sfn python3.11 usr/bin/python3
  cat usr/share/ca-certificates/mozilla/*.crt > etc/ssl/certs/ca-certificates.crt
  ln -sfn /usr/share/zoneinfo/Etc/UTC etc/localtime
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' \
    > etc/passwd
  printf 'root:x:0:\nnonroot:x:65532:\n' > etc/group
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > etc/nsswitch.conf
  mkdir -p home/nonroot proc sys dev run tmp
  chown 65532:65532 home/nonroot && chmod 0700 home/nonroot && chmod 1777 tmp
  for f in etc/passwd etc/group etc/nsswitch.conf; do chmod 0644 "$f"; done
)
# Byte-compile the standard library (dpkg's py3compile would have): with a read-only root, Python
# cannot cache bytecode at run time and would recompile every module at each start.
chroot "$rootfs" /usr/bin/python3.11 -m compileall -q /usr/lib/python3.11 >/dev/null
for bad in bin/sh usr/bin/sh bin/bash usr/bin/bash bin/dash usr/bin/dpkg usr/bin/apt usr/bin/perl; do
  [[ ! -e $rootfs/$bad ]] || { log "ERROR: $bad in the base root"; exit 1; }
done
tar -C "$rootfs" --sort=name --numeric-owner -cf "$work/base.tar" .
done_step "base layer $(du -h "$work/base.tar" | cut -f1), $(find "$rootfs/var/lib/dpkg/status.d" -type f | wc -l) packages"

# --- 4. image: OCI layout with umoci ------------------------------------------------------------
step "4/5 image: umoci -> $out/oci:$tag"
oci=$out/oci
rm -rf "$oci"
"$umoci" init --layout "$oci"
"$umoci" new --image "$oci:$tag"
"$umoci" raw add-layer --image "$oci:$tag" --history.created "$created" \
  --history.created_by "mmdebstrap --variant=extract $suite python3.11-minimal libpython3.11-stdlib netbase (+ ca-certificates tzdata base-files)" \
  "$work/base.tar"
"$umoci" raw add-layer --image "$oci:$tag" --history.created "$created" \
  --history.created_by "python3 -m venv /opt/flotilla && pip install $(basename "$wheel")" \
  "$work/app.tar"
labels=(
  "org.opencontainers.image.title=flotilla"
  "org.opencontainers.image.description=Flotilla operator: Kubernetes-native multi-cluster scheduler for AI workloads"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.licenses=Apache-2.0"
)
[[ -z $source_url ]] || labels+=("org.opencontainers.image.source=$source_url")
config_args=(
  --config.user 65532:65532
  --config.entrypoint flotilla-operator
  --config.workingdir /home/nonroot
  --config.env PATH=/opt/flotilla/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  --config.env LANG=C.UTF-8
  --config.env PYTHONDONTWRITEBYTECODE=1
  --config.env PYTHONUNBUFFERED=1
  --created "$created"
  --author "Flotilla"
  --history.created "$created"
  --history.created_by "USER 65532:65532; ENTRYPOINT [\"flotilla-operator\"]"
)
for l in "${labels[@]}"; do config_args+=(--config.label "$l" --manifest.annotation "$l"); done
"$umoci" config --image "$oci:$tag" "${config_args[@]}"
"$umoci" gc --layout "$oci"

# The manifest's digest and the image's size (compressed layers + config + manifest).
read -r digest size < <("$py" - "$oci" "$tag" <<'EOF'
import json, sys, pathlib
layout, tag = pathlib.Path(sys.argv[1]), sys.argv[2]
index = json.loads((layout / "index.json").read_text())
m = next(d for d in index["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
blob = lambda d: layout / "blobs" / d.split(":")[0] / d.split(":")[1]
manifest = json.loads(blob(m["digest"]).read_text())
size = m["size"] + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
print(m["digest"], size)
EOF
)
{
  echo "image: flotilla:$tag"
  echo "layout: $oci (tag $tag)"
  echo "digest: $digest"
  echo "size: $size bytes compressed ($(( size / 1024 / 1024 )) MiB)"
  echo "platform: linux/$arch"
  echo "revision: $revision"
  echo "created: $created"
} | tee "$out/IMAGE" >&2
done_step "image"

# --- 5. check -----------------------------------------------------------------------------------
if (( check )); then
  step "5/5 check: unpack and run the entrypoint as uid 65532 on a read-only root"
  bash "$here/check.sh" "$oci:$tag"
  done_step "check"
fi
rm -rf "$work"
log "done: $oci:$tag ($digest)"
