#!/usr/bin/env bash
# Check the operator image built by tools/image/build.sh without a container daemon: unpack it
# with umoci into an OCI runtime bundle and run what its config says (entrypoint, env, user) the
# way a container runtime does under the chart's securityContext: uid/gid 65532, no capabilities,
# a read-only root, a writable tmpfs /tmp (the chart's emptyDir), /proc and the usual devices.
# The host's network is shared (like hostNetwork), so a hub on 127.0.0.1 is reachable.
#
# Two runners (FLOTILLA_IMAGE_RUNNER): `runc` (Debian's runc, an OCI runtime: it runs the bundle's
# config.json with the changes above) when it is installed, else `chroot` (unshare a mount
# namespace, bind the root read-only, chroot --userspec=65532:65532: no runtime needed at all).
#
# Usage:
#   tools/image/check.sh LAYOUT:TAG                   static checks, then `flotilla-operator --help`,
#                                                      `python -m flotilla --help` (the chart's command)
#                                                      and an import of the operator, as uid 65532
#   tools/image/check.sh LAYOUT:TAG --hub RIG_WORKDIR  also run the operator for a while against a
#                                                      running rig's hub (tools/image/hub_check.py);
#                                                      --hub auto starts a rig for it and stops it after;
#                                                      --examples also applies examples/ there
#   LAYOUT:TAG defaults to dist/image/oci and the tag tools/image/build.sh gave it.
#   tools/image/check.sh --run BUNDLE [--mount SRC:DEST]... [--env K=V]... [--] [ARG...]
#       run the unpacked image's entrypoint (with ARGs as its arguments, like `docker run IMAGE
#       ARG...`); --entrypoint PROG replaces the entrypoint. Mounts are read-only binds.
# Needs root (mount namespace, chroot or runc) and umoci (tools/rig-bin/build.sh umoci); --hub
# needs the dev venv (make venv) and the rig's binaries (make binaries).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { printf '[image-check] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# run_bundle BUNDLE [--mount SRC:DEST]... [--env K=V]... [--entrypoint PROG] [--] [ARG...]
# Replaces this shell with the container's process (one pid: a signal to it reaches the operator).
run_bundle() {
  local bundle=$1; shift
  local mounts=() envs=() entrypoint=""
  while (($#)); do
    case "$1" in
      --mount) mounts+=("$2"); shift 2 ;;
      --env) envs+=("$2"); shift 2 ;;
      --entrypoint) entrypoint=$2; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  local root=$bundle/rootfs
  [[ -f $bundle/config.json && -d $root ]] || fail "$bundle is not an unpacked bundle (umoci unpack)"
  # umoci's runtime spec, derived from the image config, is kept as it was unpacked.
  [[ -f $bundle/config.image.json ]] || cp "$bundle/config.json" "$bundle/config.image.json"
  local runner=${FLOTILLA_IMAGE_RUNNER:-}
  [[ -n $runner ]] || { command -v runc >/dev/null && runner=runc || runner=chroot; }
  # The process of the spec: the image's entrypoint, env and user (ARGs replace the image's CMD,
  # which this image has none of, as `docker run IMAGE ARG...` does). For runc, the spec is
  # rewritten with the chart's securityContext; for chroot, the fields come back NUL-separated.
  local spec
  mapfile -d '' spec < <(python3 - "$bundle" "$runner" "$entrypoint" "${#envs[@]}" "${envs[@]}" \
    "${#mounts[@]}" "${mounts[@]}" "$@" <<'EOF'
import json, sys
bundle, runner, entrypoint = sys.argv[1:4]
rest = sys.argv[4:]
n = int(rest[0]); envs, rest = rest[1 : 1 + n], rest[1 + n :]
n = int(rest[0]); mounts, extra = rest[1 : 1 + n], rest[1 + n :]
spec = json.load(open(f"{bundle}/config.image.json"))
proc = spec["process"]
args = [entrypoint] if entrypoint else proc["args"]
if extra:
    args = [args[0], *extra]
env = dict(e.split("=", 1) for e in proc["env"])
env.update(e.split("=", 1) for e in envs)
env_list = [f"{k}={v}" for k, v in env.items()]
if runner == "chroot":
    out = [str(proc["user"]["uid"]), str(proc["user"]["gid"]), proc.get("cwd", "/"), str(len(env_list))]
    sys.stdout.write("\0".join(out + env_list + args) + "\0")
    sys.exit()
proc.update(args=args, env=env_list, terminal=False, noNewPrivileges=True)
proc["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
spec["root"]["readonly"] = True
spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777", "size=16m"]})
for m in mounts:
    src, dest = m.split(":", 1)
    spec["mounts"].append({"destination": dest, "type": "bind", "source": src,
                           "options": ["rbind", "ro", "nosuid", "nodev"]})
spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
json.dump(spec, open(f"{bundle}/config.json", "w"), indent=1)
EOF
)
  if [[ $runner == runc ]]; then
    exec runc run --bundle "$bundle" "flotilla-image-check-$$-$RANDOM"
  fi
  local uid=${spec[0]} gid=${spec[1]} cwd=${spec[2]} nenv=${spec[3]}
  local image_env=("${spec[@]:4:nenv}") args=("${spec[@]:4+nenv}")
  # Mount points for the binds go into the unpacked copy before its root turns read-only (what a
  # runtime does); the image itself is not changed.
  local m
  for m in "${mounts[@]}"; do
    if [[ -d ${m%%:*} ]]; then mkdir -p "$root/${m#*:}"; else mkdir -p "$(dirname "$root/${m#*:}")"; touch "$root/${m#*:}"; fi
  done
  # unshare without --fork execs bash, which execs env, chroot and the entrypoint. (chroot(8)
  # starts the process in / rather than the image's WORKDIR; runc honours it.)
  # shellcheck disable=SC2016  # the script expands its own arguments
  exec unshare --mount --propagation private -- bash -euc '
    root=$1 cwd=$2 nmounts=$3; shift 3
    mounts=("${@:1:nmounts}"); shift "$nmounts"
    mount --bind "$root" "$root"
    mount -t tmpfs -o size=16m,mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    mount -t tmpfs -o size=64k,mode=0755,nosuid tmpfs "$root/dev"
    for n in null zero full random urandom tty; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done
    mkdir "$root/dev/shm" && mount -t tmpfs -o size=16m,mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
    ln -s /proc/self/fd "$root/dev/fd"
    for m in "${mounts[@]}"; do
      mount --bind "${m%%:*}" "$root/${m#*:}"
      mount -o remount,bind,ro "$root/${m#*:}"
    done
    mount -o remount,bind,ro "$root"
    cd "$root/${cwd#/}"
    exec "$@"
  ' run-image "$root" "$cwd" "${#mounts[@]}" "${mounts[@]}" \
    env -i "${image_env[@]}" /usr/sbin/chroot --userspec="$uid:$gid" --groups="$gid" "$root" "${args[@]}"
}

if [[ ${1:-} == --run ]]; then
  shift
  run_bundle "$@"
fi

ref=""
hub=""
hub_args=()
while (($#)); do
  case "$1" in
    --hub) hub=$2; shift 2 ;;
    --examples) hub_args+=(--examples); shift ;;
    -*) fail "unknown argument: $1" ;;
    *) ref=$1; shift ;;
  esac
done
if [[ -z $ref ]]; then
  layout=$repo/dist/image/oci
  [[ -f $layout/index.json ]] || fail "no image in $layout: run tools/image/build.sh"
  ref=$layout:$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$layout/index.json")
fi
[[ $(id -u) -eq 0 ]] || fail "run as root (mount namespace, chroot or runc)"
bash "$repo/tools/rig-bin/build.sh" umoci 2>/dev/null
umoci=${FLOTILLA_RIG_CACHE:-$HOME/.cache/flotilla-rig}/umoci-$(sed -n 's/^UMOCI_VERSION=//p' "$repo/tools/rig-bin/versions.env")/umoci
runner=${FLOTILLA_IMAGE_RUNNER:-}
[[ -n $runner ]] || { command -v runc >/dev/null && runner=runc || runner=chroot; }
export FLOTILLA_IMAGE_RUNNER=$runner

work=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-image-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
"$umoci" unpack --image "$ref" "$bundle" >/dev/null
root=$bundle/rootfs
log "unpacked $ref: $(du -sh "$root" | cut -f1) on disk; runner: $runner"

# --- static checks ----------------------------------------------------------------------------
python3 - "$bundle/config.json" "$root" <<'EOF'
import json, pathlib, sys
spec = json.load(open(sys.argv[1]))
root = pathlib.Path(sys.argv[2])
proc = spec["process"]
problems = []
if proc["args"] != ["flotilla-operator"]:
    problems.append(f"entrypoint is {proc['args']}, not ['flotilla-operator']")
if (proc["user"]["uid"], proc["user"]["gid"]) != (65532, 65532):
    problems.append(f"user is {proc['user']}, not 65532:65532")
path = next(e for e in proc["env"] if e.startswith("PATH=")).split("=", 1)[1].split(":")
if path[0] != "/opt/flotilla/bin":
    problems.append(f"PATH does not start with the venv: {path}")
for shell in ("bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "bin/dash", "usr/bin/dash", "bin/busybox"):
    if (root / shell).exists() or (root / shell).is_symlink():
        problems.append(f"a shell in the image: /{shell}")
# The dev rig's Go binaries and the test/dev dependencies must not be in the runtime image.
for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok",
             "helm", "training-operator", "umoci", "crane", "go"):
    found = [str(p) for p in root.rglob(name) if p.is_file()]
    if found:
        problems.append(f"rig binary {name} in the image: {found}")
site = root / "opt/flotilla/lib"
for dev in ("pytest", "_pytest", "hypothesis", "mypy", "ruff", "pip", "setuptools"):
    if list(site.glob(f"python3*/site-packages/{dev}")):
        problems.append(f"{dev} installed in the image's venv")
if not list(site.glob("python3*/site-packages/flotilla/__main__.py")):
    problems.append("flotilla is not installed in /opt/flotilla")
if not (root / "opt/flotilla/bin/flotilla-operator").exists():
    problems.append("no /opt/flotilla/bin/flotilla-operator")
pw = (root / "etc/passwd").read_text()
if ":65532:65532:" not in pw:
    problems.append("no passwd entry for 65532")
for p in problems:
    print("FAIL:", p, file=sys.stderr)
print("static checks: entrypoint ['flotilla-operator'], user 65532:65532, PATH from /opt/flotilla/bin, "
      "no shell, no rig binaries, no test/dev packages", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

# --- run it -------------------------------------------------------------------------------------
out=$work/out
if ! (run_bundle "$bundle" -- --help) >"$out" 2>&1 || ! grep -q 'Usage: .*run' "$out"; then
  cat "$out" >&2
  fail "flotilla-operator --help"
fi
log "entrypoint as uid 65532, read-only root: flotilla-operator --help -> $(head -1 "$out")"
if ! (run_bundle "$bundle" --entrypoint python -- -m flotilla --help) >"$out" 2>&1 \
  || ! grep -q 'Usage: .*run' "$out"; then
  cat "$out" >&2
  fail "python -m flotilla --help (the chart's command)"
fi
log "the chart's command: python -m flotilla --help -> $(head -1 "$out")"
probe='import os, sys, tempfile, flotilla, flotilla.operator
assert os.getuid() == 65532 and os.getgid() == 65532, (os.getuid(), os.getgid())
try:
    open("/opt/flotilla/probe", "w")
    sys.exit("the root filesystem is writable")
except OSError:
    pass
with tempfile.NamedTemporaryFile() as f:  # the kubernetes client writes CA data like this
    pass
print(f"flotilla {flotilla.__version__}, python {sys.version.split()[0]}, uid {os.getuid()}, read-only root, tmp {tempfile.gettempdir()}")'
if ! (run_bundle "$bundle" --entrypoint python -- -c "$probe") >"$out" 2>&1; then
  cat "$out" >&2
  fail "importing the operator in the image"
fi
log "import flotilla.operator: $(tail -1 "$out")"

if [[ $hub == auto ]]; then
  hub=$work/rig
  log "starting a rig under $hub"
  trap '"$repo"/.venv/bin/flotilla dev down --workdir "$hub" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  "$repo/.venv/bin/flotilla" dev up --workdir "$hub" >/dev/null
fi
if [[ -n $hub ]]; then
  "$repo/.venv/bin/python" "$here/hub_check.py" --workdir "$hub" --bundle "$bundle" "${hub_args[@]}"
fi
log "OK"
