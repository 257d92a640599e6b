#!/usr/bin/env bash
# Builds the zipdeploy C library and installs it under a prefix:
#
#   ./install.sh --prefix /usr/local
#
#   PREFIX/lib/libzipdeploy.so.X.Y.Z   the shared library (SONAME libzipdeploy.so.X)
#   PREFIX/lib/libzipdeploy.so.X       -> libzipdeploy.so.X.Y.Z (what programs load)
#   PREFIX/lib/libzipdeploy.so         -> libzipdeploy.so.X (what -lzipdeploy finds)
#   PREFIX/lib/libzipdeploy.a          the static library
#   PREFIX/include/zipdeploy.h         the header
#   PREFIX/lib/pkgconfig/zipdeploy.pc  for `pkg-config --cflags --libs zipdeploy`
#   PREFIX/share/doc/zipdeploy/        LICENSE-MIT, LICENSE-APACHE
#
# Then: cc prog.c $(pkg-config --cflags --libs zipdeploy)
#       (set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if pkg-config does not look there).
# `./install.sh --help` lists the options.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ./install.sh [--prefix DIR] [options]

Builds the library with cargo (release profile) and installs the shared and
static library, include/zipdeploy.h and zipdeploy.pc under a prefix.

  --prefix DIR          where to install (default /usr/local)
  --libdir DIR          libraries and pkgconfig/ (default PREFIX/lib)
  --includedir DIR      the header (default PREFIX/include)
  --destdir DIR         stage the files under DIR (for packagers; also $DESTDIR);
                        the .pc file still names the real prefix
  --profile NAME        cargo profile to build (default release; dev is faster to build)
  --library-type TYPE   both (default), shared or static. static installs no
                        shared library (and removes one installed before), so
                        `pkg-config --static --libs zipdeploy` links it statically
  --rpath WHEN          auto (default), always or never: whether zipdeploy.pc adds
                        -Wl,-rpath,LIBDIR, so programs find the shared library
                        without LD_LIBRARY_PATH. auto adds it unless LIBDIR is
                        one the dynamic loader searches (/usr/lib, ld.so.conf)
  -h, --help            this text

Environment: CARGO (the cargo to run), CARGO_TARGET_DIR (honoured by cargo).
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 2
}

prefix=/usr/local
libdir=
includedir=
destdir=${DESTDIR:-}
profile=release
library_type=both
rpath=auto
while (($#)); do
  case $1 in
    --prefix | --libdir | --includedir | --destdir | --profile | --library-type | --rpath)
      (($# >= 2)) || die "$1 needs a value"
      opt=${1#--}
      value=$2
      shift 2
      ;;
    --*=*)
      opt=${1%%=*}
      opt=${opt#--}
      value=${1#*=}
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  case $opt in
    prefix) prefix=$value ;;
    libdir) libdir=$value ;;
    includedir) includedir=$value ;;
    destdir) destdir=$value ;;
    profile) profile=$value ;;
    library-type) library_type=$value ;;
    rpath) rpath=$value ;;
    *) die "unknown option '--$opt' (see --help)" ;;
  esac
done
case $library_type in both | shared | static) ;; *) die "--library-type must be both, shared or static" ;; esac
case $rpath in auto | always | never) ;; *) die "--rpath must be auto, always or never" ;; esac
[[ -n $prefix ]] || die "--prefix must not be empty"

# Absolute paths: the .pc file and the rpath must not depend on the current directory.
prefix=$(realpath -m -- "$prefix")
libdir=$(realpath -m -- "${libdir:-$prefix/lib}")
includedir=$(realpath -m -- "${includedir:-$prefix/include}")
[[ -z $destdir ]] || destdir=$(realpath -m -- "$destdir")

cd "$(dirname "$0")"
cargo=${CARGO:-cargo}
version=$(sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
[[ $version =~ ^([0-9]+)\.[0-9]+\.[0-9]+ ]] || die "no version in Cargo.toml"
major=${BASH_REMATCH[1]}

echo "install.sh: building the library (cargo build --lib --profile $profile)"
"$cargo" build --lib --profile "$profile"
target_dir=$("$cargo" metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $target_dir ]] || die "cannot find cargo's target directory"
built=$target_dir/$([[ $profile == dev ]] && echo debug || echo "$profile")

# The libraries Rust's standard library needs when linked statically
# (`cargo rustc --lib --crate-type staticlib -- --print native-static-libs`);
# every C dependency of the crate is compiled into libzipdeploy.a.
native_static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

# Directories the dynamic loader searches without help.
loader_dirs() {
  printf '%s\n' /lib /lib64 /usr/lib /usr/lib64
  cat /etc/ld.so.conf /etc/ld.so.conf.d/*.conf 2>/dev/null | sed -n 's|^[[:space:]]*\(/[^[:space:]#]*\).*|\1|p'
}
shared=$([[ $library_type != static ]] && echo yes || echo no)
add_rpath=no
if [[ $shared == yes ]]; then
  case $rpath in
    always) add_rpath=yes ;;
    auto) loader_dirs | sed 's|/*$||' | grep -qxF -- "$libdir" || add_rpath=yes ;;
  esac
fi

# ${prefix}-relative paths in the .pc file where possible (relocatable by
# pkg-config --define-prefix).
pc_path() {
  case $1 in
    "$prefix") echo '${prefix}' ;;
    "$prefix"/*) echo "\${prefix}${1#"$prefix"}" ;;
    *) echo "$1" ;;
  esac
}
libs='-L${libdir} -lzipdeploy'
[[ $add_rpath == no ]] || libs+=' -Wl,-rpath,${libdir}'

lib=$destdir$libdir
inc=$destdir$includedir
install -d "$lib/pkgconfig" "$inc"
if [[ $shared == yes ]]; then
  install -m 0755 "$built/libzipdeploy.so" "$lib/libzipdeploy.so.$version"
  ln -sfn "libzipdeploy.so.$version" "$lib/libzipdeploy.so.$major"
  ln -sfn "libzipdeploy.so.$major" "$lib/libzipdeploy.so"
else
  rm -f "$lib/libzipdeploy.so" "$lib/libzipdeploy.so.$major" "$lib"/libzipdeploy.so."$major".*
fi
if [[ $library_type != shared ]]; then
  install -m 0644 "$built/libzipdeploy.a" "$lib/libzipdeploy.a"
fi
install -m 0644 include/zipdeploy.h "$inc/zipdeploy.h"
install -d "$destdir$prefix/share/doc/zipdeploy"
install -m 0644 LICENSE-MIT LICENSE-APACHE "$destdir$prefix/share/doc/zipdeploy/"
cat >"$lib/pkgconfig/zipdeploy.pc.tmp" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=$(pc_path "$libdir")
includedir=$(pc_path "$includedir")

Name: zipdeploy
Description: Fetch, verify, extract and atomically install ZIP application packages (C ABI)
Version: $version
Libs: $libs
Libs.private: $native_static_libs
Cflags: -I\${includedir}
EOF
chmod 0644 "$lib/pkgconfig/zipdeploy.pc.tmp"
mv -f "$lib/pkgconfig/zipdeploy.pc.tmp" "$lib/pkgconfig/zipdeploy.pc"

# Refresh the loader's cache when installing for real into one of its directories.
if [[ $shared == yes && -z $destdir && $add_rpath == no && $(id -u) == 0 ]] && command -v ldconfig >/dev/null; then
  ldconfig || echo "install.sh: ldconfig failed; run it before starting programs" >&2
fi

echo "install.sh: installed zipdeploy $version ($library_type) into ${destdir}$prefix"
ls -l "$lib"/libzipdeploy.* "$inc/zipdeploy.h" "$lib/pkgconfig/zipdeploy.pc" | sed 's/^/  /'
static_flag=$([[ $library_type == static ]] && echo ' --static' || true)
case ":${PKG_CONFIG_PATH:-}:$(pkg-config --variable pc_path pkg-config 2>/dev/null || true):" in
  *":$libdir/pkgconfig:"*) env= ;;
  *) env="PKG_CONFIG_PATH=$libdir/pkgconfig " ;;
esac
echo "build with: cc prog.c \$(${env}pkg-config$static_flag --cflags --libs zipdeploy)"
