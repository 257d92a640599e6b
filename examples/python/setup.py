"""Builds the zipdeploy C library with cargo and bundles it into the package.

`pip install ./examples/python` (from a checkout of the repository) runs
`cargo build --lib --profile release` in the repository that holds this
directory and copies the resulting libzipdeploy.so (and the license texts)
into the package, next to zipdeploy/__init__.py, which loads it from there.
The installed package needs nothing else at run time; building it needs Rust
(cargo).

The wheel is tagged py3-none-<platform>: it holds a native library but no
Python extension, so it works with any Python 3 on this platform.

Environment:
  CARGO                    the cargo to run (default: cargo on PATH)
  CARGO_TARGET_DIR         honoured by cargo
  ZIPDEPLOY_CARGO_PROFILE  the cargo profile (default release; dev builds faster)
"""

import json
import os
import pathlib
import re
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.dist import Distribution

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
MANIFEST = REPO / "Cargo.toml"


def crate_version() -> str:
    if not MANIFEST.is_file():
        raise SystemExit(
            f"{MANIFEST} not found: build the package from a checkout of the zipdeploy "
            "repository (pip >= 21.3 builds a local directory in place)"
        )
    match = re.search(r'^version = "([^"]+)"', MANIFEST.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"no version in {MANIFEST}")
    return match.group(1)


def cargo(*args: str, capture: bool = False) -> str:
    command = [os.environ.get("CARGO", "cargo"), *args, "--manifest-path", str(MANIFEST)]
    try:
        done = subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    except FileNotFoundError:
        raise SystemExit("cargo not found: install Rust (https://rustup.rs) to build the zipdeploy library")
    return done.stdout if capture else ""


def build_library() -> pathlib.Path:
    """Runs cargo and returns the path of the shared library it built."""
    profile = os.environ.get("ZIPDEPLOY_CARGO_PROFILE") or "release"
    cargo("build", "--lib", "--profile", profile)
    target = pathlib.Path(json.loads(cargo("metadata", "--format-version", "1", "--no-deps", capture=True))["target_directory"])
    library = target / ("debug" if profile == "dev" else profile) / "libzipdeploy.so"
    if not library.is_file():
        raise SystemExit(f"cargo did not produce {library}")
    return library


class BuildWithLibrary(build_py):
    """build_py, plus the C library and its license texts copied into the package."""

    def run(self) -> None:
        super().run()
        package = os.path.join(self.build_lib, "zipdeploy")
        self.copy_file(str(build_library()), os.path.join(package, "libzipdeploy.so"))
        for license in ("LICENSE-MIT", "LICENSE-APACHE"):
            self.copy_file(str(REPO / license), os.path.join(package, license))


class PlatformWheel(bdist_wheel):
    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(
    version=crate_version(),
    cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
