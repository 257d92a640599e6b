#!/usr/bin/env bash
# The test command: runs every test, the C, Python and Go embeddings
# included, on a Debian or Ubuntu machine that has only Rust.
#
#   tests/run.sh [CARGO TEST ARGS...]   install what is missing, then cargo test --no-fail-fast
#   tests/run.sh --deps                 only install what is missing
#
# The suite drives cc, pkg-config, readelf, valgrind, go, python3 (with venv;
# pip fetches setuptools from PyPI), mount, unshare, setpriv, the archive
# writers zip, bsdtar, 7zz and jar, systemd-analyze, mmdebstrap and buildah
# (mmdebstrap makes a minimal Debian rootfs for the image test,
# target/recipes/bookworm-minbase.tar), and from PyPI moto's S3 server and
# PyYAML (for the python3 on PATH). Missing ones are installed
# with apt-get when running as root; otherwise the script names the packages
# to install and stops. Nothing is skipped: a missing tool would fail the
# tests that need it, so the script refuses to start without it.
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=no
if [[ ${1:-} == --deps ]]; then
  deps_only=yes
  shift
fi

# What is missing, as Debian packages.
missing_packages() {
  command -v cc >/dev/null || echo gcc
  [[ -e /usr/include/stdio.h ]] || echo libc6-dev
  command -v readelf >/dev/null || echo binutils
  command -v pkg-config >/dev/null || echo pkg-config
  command -v valgrind >/dev/null || echo valgrind
  command -v go >/dev/null || echo golang-go
  command -v python3 >/dev/null || echo python3
  # venv needs ensurepip, which Debian ships in python3-venv.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
  command -v mount >/dev/null || echo mount
  command -v setpriv >/dev/null || echo util-linux
  command -v unshare >/dev/null || echo util-linux
  # tests/memory.rs measures peak RSS with GNU time; signal tests use kill(1).
  [[ -x /usr/bin/time ]] || echo time
  [[ -x /bin/kill || -x /usr/bin/kill ]] || echo procps
  # tests/reserve.rs tells reserved blocks from delayed allocation with filefrag.
  command -v filefrag >/dev/null || echo e2fsprogs
  # The archive writers of tests/writers.rs.
  command -v zip >/dev/null || echo zip
  command -v bsdtar >/dev/null || echo libarchive-tools
  command -v 7zz >/dev/null || echo 7zip
  command -v jar >/dev/null || echo default-jdk-headless
  # pip fetches setuptools from PyPI over HTTPS.
  [[ -e /etc/ssl/certs/ca-certificates.crt ]] || echo ca-certificates
  # tests/recipes.rs: unshare and setpriv (above) run the recipes' containers,
  # systemd-analyze checks the unit, mmdebstrap and buildah build the image of
  # examples/Dockerfile; python3's yaml (from PyPI, below) reads the Kubernetes
  # and Compose files.
  command -v systemd-analyze >/dev/null || echo systemd
  command -v mmdebstrap >/dev/null || echo mmdebstrap
  command -v buildah >/dev/null || echo buildah
}

# The base image of the Dockerfile test: a minimal Debian, from the same
# mirror as apt-get (no image registry needed). About 15 s to 2 min.
rootfs=${RECIPES_TEST_ROOTFS:-target/recipes/bookworm-minbase.tar}
make_rootfs() {
  [[ -s $rootfs ]] && return
  echo "tests/run.sh: making $rootfs with mmdebstrap"
  mkdir -p "$(dirname "$rootfs")"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "${rootfs%.tar}.partial.tar"
  mv "${rootfs%.tar}.partial.tar" "$rootfs"
}

mapfile -t missing < <(missing_packages | sort -u)
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    mapfile -t missing < <(missing_packages | sort -u)
    if ((${#missing[@]})); then
      echo "tests/run.sh: still missing after apt-get install: ${missing[*]}" >&2
      exit 1
    fi
  else
    echo "tests/run.sh: the tests need these Debian packages: ${missing[*]}" >&2
    echo "  install them with: sudo apt-get install ${missing[*]}" >&2
    echo "  (or run this script as root, which installs them)" >&2
    exit 1
  fi
fi

# From PyPI, for the python3 on PATH (which need not be Debian's): moto's S3
# server, which tests/s3_moto.rs starts on 127.0.0.1, and PyYAML, with which
# tests/recipes.rs reads the Kubernetes and Compose files.
if ! python3 -c 'import moto.server, yaml' 2>/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    echo "tests/run.sh: installing moto[server] and PyYAML from PyPI"
    if ! python3 -m pip --version >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q 'moto[server]' PyYAML
  else
    echo "tests/run.sh: the tests need: python3 -m pip install --user 'moto[server]' PyYAML" >&2
    exit 1
  fi
fi

for tool in cargo rustc cc pkg-config valgrind python3; do
  printf '%-10s %s\n' "$tool" "$("$tool" --version 2>&1 | head -n1)"
done
printf '%-10s %s\n' go "$(go version)"
printf '%-10s %s\n' moto "$(python3 -c 'import moto; print(moto.__version__)')"
make_rootfs
[[ $deps_only == no ]] || exit 0

if [[ ! -d ../shared/corpus/ziplinter ]]; then
  echo "tests/run.sh: the hostile-archive corpus is missing: expected at $(realpath -m ../shared/corpus/ziplinter)" >&2
  exit 1
fi

# --no-fail-fast: a failing test binary does not hide the results of the others.
exec cargo test --no-fail-fast "$@"
