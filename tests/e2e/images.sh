#!/usr/bin/env bash
# Builds the images the offline e2e tests run, with no registry pulls (none is reachable here):
#
#   prescaler-e2e/debian:<hash>      a minimal Debian bookworm root fs (debootstrap, default mirror,
#                                    python3 = 3.11), brought in with `docker import`
#   prescaler-e2e/python3.11:<hash>  stand-in for public.ecr.aws/lambda/python:3.11: awslambdaric +
#                                    boto3 in /var/runtime, /var/runtime/bootstrap, /var/task workdir
#   prescaler-e2e/moto:<hash>        moto[server] listening on 0.0.0.0:5000
#
# Wheels are downloaded on the host by pip (PyPI is reachable from the host only) and copied into
# the build context. Every tag is a hash of the image's inputs, so a second run builds nothing.
#
#   tests/e2e/images.sh build   build what is missing, then print KEY=TAG lines (also written to
#                               .e2e-cache/images.env)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/e2e"
CACHE="${E2E_CACHE:-$ROOT/.e2e-cache}"
PY="${E2E_PYTHON:-$ROOT/.venv/bin/python}"
[[ -x $PY ]] || PY=python3
LABEL="prescaler-e2e=1"

SUITE=bookworm
DEBOOTSTRAP_ARGS=(--variant=minbase --include=python3,ca-certificates)
AWSLAMBDARIC_SPEC="${E2E_AWSLAMBDARIC_SPEC:-awslambdaric>=2.2,<4}"
BOTO3_SPEC="${E2E_BOTO3_SPEC:-boto3}"
# Same moto as the venv's (the project's dev extra), so the server behaves as the integration tests saw.
MOTO_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)
MOTO_SPEC="${E2E_MOTO_SPEC:-moto[server,cloudwatch,dynamodb,sagemaker,applicationautoscaling]${MOTO_VERSION:+==$MOTO_VERSION}}"
[[ $MOTO_SPEC == *[=\>\<]* ]] || MOTO_SPEC="$MOTO_SPEC>=5.0.0"

log() { printf '[e2e images] %s\n' "$*" >&2; }

case "$(uname -m)" in
  x86_64) PLATFORM=manylinux2014_x86_64; DEB_ARCH=amd64 ;;
  aarch64) PLATFORM=manylinux2014_aarch64; DEB_ARCH=arm64 ;;
  *) log "unsupported machine $(uname -m)"; exit 1 ;;
esac

hash_of() { sha256sum | cut -c1-12; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

base_key() { printf '%s\n' "$SUITE" "$DEB_ARCH" "${DEBOOTSTRAP_ARGS[@]}" | hash_of; }

build_base() {
  local key tag dir tar
  key=$(base_key); tag="prescaler-e2e/debian:$key"
  if image_exists "$tag"; then echo "$tag"; return; fi
  tar="$CACHE/rootfs-$SUITE-$key.tar"
  if [[ ! -s $tar ]]; then
    dir="$CACHE/rootfs-$SUITE-$key"
    rm -rf "$dir"
    log "debootstrap $SUITE ($DEB_ARCH) into $dir (a few minutes, once)"
    debootstrap --arch="$DEB_ARCH" "${DEBOOTSTRAP_ARGS[@]}" "$SUITE" "$dir" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
    # Drop what an image has no use for; keep the root fs small for import.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
      "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
    tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  log "docker import $tar as $tag"
  docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tar" "$tag" >/dev/null
  echo "$tag"
}

# Download wheels for CPython 3.11 on this platform into a folder keyed by the requirement list.
download_wheels() {
  local name=$1; shift
  local key dir
  key=$(printf '%s\n' "$PLATFORM" "$@" | hash_of)
  dir="$CACHE/wheels-$name-$key"
  if [[ ! -f $dir/.complete ]]; then
    rm -rf "$dir"; mkdir -p "$dir"
    log "pip download $* -> $dir"
    "$PY" -m pip download -q --disable-pip-version-check --dest "$dir" --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 --platform "$PLATFORM" \
      --platform manylinux_2_28_"${PLATFORM#manylinux2014_}" "$@" >"$CACHE/pip-$name.log" 2>&1 \
      || { grep -v 'is ignored' "$CACHE/pip-$name.log" | tail -n 30 >&2; log "pip download failed"; exit 1; }
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# Build context = Dockerfile template + wheels; the tag hashes the Dockerfile, the helper files
# and the wheel file names (which carry their versions).
build_from_context() {
  local name=$1 base=$2 dockerfile=$3 wheels=$4; shift 4
  local ctx key tag
  key=$( { echo "$base"; cat "$dockerfile" "$@"; ls "$wheels"; } | hash_of)
  tag="prescaler-e2e/$name:$key"
  if image_exists "$tag"; then echo "$tag"; return; fi
  ctx="$CACHE/ctx-$name-$key"
  rm -rf "$ctx"; mkdir -p "$ctx/wheels"
  cp "$wheels"/*.whl "$ctx/wheels/"
  cp "$dockerfile" "$ctx/Dockerfile"
  local f; for f in "$@"; do cp "$f" "$ctx/"; done
  log "docker build $tag"
  if ! docker build --pull=false --force-rm --label "$LABEL" --build-arg "BASE=$base" -t "$tag" "$ctx" \
      >"$CACHE/build-$name.log" 2>&1; then
    tail -n 40 "$CACHE/build-$name.log" >&2; rm -rf "$ctx"
    log "docker build of $tag failed (log: $CACHE/build-$name.log)"; exit 1
  fi
  rm -rf "$ctx"
  echo "$tag"
}

build_all() {
  mkdir -p "$CACHE"
  local base lambda_wheels moto_wheels lambda_tag moto_tag
  base=$(build_base)
  # pip itself comes along as a wheel: Debian's minimal python3 has no pip, and a wheel runs
  # straight from its zip (python3 pip.whl/pip install ...).
  lambda_wheels=$(download_wheels lambda pip "$AWSLAMBDARIC_SPEC" "$BOTO3_SPEC")
  moto_wheels=$(download_wheels moto pip "$MOTO_SPEC")
  lambda_tag=$(build_from_context python3.11 "$base" "$HERE/images/lambda.Dockerfile" "$lambda_wheels" \
    "$HERE/images/bootstrap" "$HERE/images/lambda-entrypoint.sh")
  moto_tag=$(build_from_context moto "$base" "$HERE/images/moto.Dockerfile" "$moto_wheels" \
    "$HERE/images/moto_server.py")
  {
    echo "E2E_BASE_IMAGE=$base"
    echo "E2E_LAMBDA_IMAGE=$lambda_tag"
    echo "E2E_MOTO_IMAGE=$moto_tag"
  } | tee "$CACHE/images.env"
}

case "${1:-}" in
  build) build_all ;;
  *) echo "usage: $0 build" >&2; exit 2 ;;
esac
