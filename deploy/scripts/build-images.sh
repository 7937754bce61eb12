#!/usr/bin/env bash
# Build the container images with podman, on a machine that reaches no container registry.
#
#   deploy/scripts/build-images.sh [host] [relay] [bff]     # default: host relay
#
# 1. podman settings: CONTAINERS_CONF defaults to deploy/podman/containers.conf (runc,
#    cgroupfs, ulimits), unless already set.
# 2. The base image: ZL_BASE_IMAGE if set (e.g. docker.io/library/python:3.12-slim-bookworm
#    where a registry is reachable); else localhost/debian-bookworm-min, made once with
#    debootstrap (--variant=minbase) and `podman import`, its root tarball cached.
# 3. The wheels: downloaded on this machine for the image's Python (ZL_IMAGE_PYTHON, 3.11
#    for Debian bookworm), cached per dependency list, copied into deploy/wheels; the build
#    then installs with --no-index.
# 4. podman build of each image (docker format: OCI images drop HEALTHCHECK), tagged
#    localhost/zero-latency-NAME:dev (ZL_IMAGE_TAG), layers cached by podman.
#
# Environment: ZL_CACHE_DIR (default ~/.cache/zero-latency), ZL_DEBIAN_MIRROR,
# ZL_PYTHON (the Python whose pip downloads the wheels; default .venv/bin/python).
# Needs root for debootstrap (or a ZL_BASE_IMAGE that exists). Prints each step's time,
# then every image's size.
set -euo pipefail

# The physical folder: a build context made of symbolic links is not followed by podman.
ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$ROOT"

export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"
CACHE="${ZL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zero-latency}"
MIRROR="${ZL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LOCAL_BASE="localhost/debian-bookworm-min"
# Bumped whenever the recipe of the local base changes (a stale base is then re-made).
BASE_RECIPE=2
BASE="${ZL_BASE_IMAGE:-$LOCAL_BASE}"
IMAGE_PYTHON="${ZL_IMAGE_PYTHON:-3.11}"
TAG="${ZL_IMAGE_TAG:-dev}"
PYTHON="${ZL_PYTHON:-$ROOT/.venv/bin/python}"
IMAGES=("$@")
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=(host relay)

step_start=$SECONDS
step() {
    echo "build-images: $* ($((SECONDS - step_start)) s so far)" >&2
}
die() {
    echo "build-images: $*" >&2
    exit 1
}

command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"
for name in "${IMAGES[@]}"; do
    [ -f "deploy/$name.Containerfile" ] || die "no deploy/$name.Containerfile"
done

# --- the base image -------------------------------------------------------------------
base_recipe() {
    podman image inspect --format '{{index .Labels "org.zero-latency.base-recipe"}}' "$1" \
        2>/dev/null || true
}
if podman image exists "$BASE" && { [ "$BASE" != "$LOCAL_BASE" ] || [ "$(base_recipe "$BASE")" = "$BASE_RECIPE" ]; }; then
    step "base image $BASE is present"
elif [ "$BASE" != "$LOCAL_BASE" ]; then
    die "base image $BASE is not present (podman pull it, or unset ZL_BASE_IMAGE)"
else
    tarball="$CACHE/debian-bookworm-minbase-$BASE_RECIPE.tar"
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || die "debootstrap is not installed"
        [ "$(id -u)" = 0 ] || die "debootstrap needs root (or set ZL_BASE_IMAGE)"
        step "debootstrap --variant=minbase bookworm from $MIRROR"
        mkdir -p "$CACHE"
        rootfs="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
        trap 'rm -rf "$rootfs"' EXIT
        debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE/debootstrap.log"
        # As Debian's own slim images: no package caches, documentation (but the
        # copyright files), manuals or translations, now or from later installs.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
        find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
        rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
            'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
            'path-exclude /usr/share/locale/*' >"$rootfs/etc/dpkg/dpkg.cfg.d/zl-slim"
        tar -C "$rootfs" -c . >"$tarball.tmp"
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
        trap - EXIT
    fi
    step "podman import $tarball as $LOCAL_BASE"
    podman import --quiet --change "LABEL org.zero-latency.base-recipe=$BASE_RECIPE" \
        "$tarball" "$LOCAL_BASE" >/dev/null
fi

# --- the wheels -----------------------------------------------------------------------
[ -x "$PYTHON" ] || die "$PYTHON not found (run python3 dev.py --version first, or set ZL_PYTHON)"
# Keyed by what decides the wheels: the dependencies and the image's Python.
key="$("$PYTHON" -c 'import hashlib, json, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(hashlib.sha256(json.dumps([project["dependencies"], sys.argv[1]]).encode()).hexdigest()[:16])
' "$IMAGE_PYTHON")"
wheelhouse="$CACHE/wheels/$key"
if [ ! -f "$wheelhouse/requirements.txt" ]; then
    step "downloading wheels for Python $IMAGE_PYTHON into $wheelhouse"
    rm -rf "$wheelhouse.tmp"
    mkdir -p "$wheelhouse.tmp"
    platforms=()
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    # Binary wheels only: the image's build stage has no compiler, and neither needs one.
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version "$IMAGE_PYTHON" --implementation cp "${platforms[@]}" \
        --platform manylinux2014_x86_64 --dest "$wheelhouse.tmp" . "setuptools>=69" \
        2> >(grep -v "is ignored: it is neither" >&2)
    # Every dependency, pinned to the wheel downloaded (setuptools only builds the project).
    for wheel in "$wheelhouse.tmp"/*.whl; do
        base="$(basename "$wheel")"
        name="${base%%-*}"
        rest="${base#*-}"
        [ "$name" = setuptools ] || echo "${name}==${rest%%-*}"
    done | sort >"$wheelhouse.tmp/requirements.txt"
    rm -rf "$wheelhouse"
    mv "$wheelhouse.tmp" "$wheelhouse"
else
    step "wheels for Python $IMAGE_PYTHON are cached in $wheelhouse"
fi
find deploy/wheels -mindepth 1 ! -name README.md ! -name .gitignore -delete
cp "$wheelhouse"/* deploy/wheels/

# --- the images -----------------------------------------------------------------------
# What a rebuild replaced (an image, its build stage) is only disk afterwards: remove it
# when no container uses it. The build stage is tagged so that it is known and kept.
image_id() {
    podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
}
replace() {
    if [ -n "$1" ] && [ "$1" != "$(image_id "$2")" ]; then
        podman rmi "$1" >/dev/null 2>&1 || true
    fi
}
build_args=(--format docker --network host --build-arg "BASE_IMAGE=$BASE" --build-arg PIP_OFFLINE=1)
for name in "${IMAGES[@]}"; do
    step "podman build deploy/$name.Containerfile"
    image="localhost/zero-latency-$name:$TAG"
    stage="localhost/zero-latency-$name-build:$TAG"
    previous="$(image_id "$image")"
    previous_stage="$(image_id "$stage")"
    podman build --quiet "${build_args[@]}" --file "deploy/$name.Containerfile" \
        --tag "$image" . >/dev/null
    podman build --quiet "${build_args[@]}" --file "deploy/$name.Containerfile" \
        --target build --tag "$stage" . >/dev/null
    replace "$previous" "$image"
    replace "$previous_stage" "$stage"
done
step "done"
for name in "${IMAGES[@]}"; do
    size="$(podman image inspect --format '{{.Size}}' "localhost/zero-latency-$name:$TAG")"
    echo "localhost/zero-latency-$name:$TAG $((size / 1000000)) MB"
done
