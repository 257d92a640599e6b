//! Generates the C header `include/zipdeploy.h` from `src/ffi/` with
//! cbindgen, and gives the shared library its SONAME.
//!
//! The SONAME is `libzipdeploy.so.<major>` (`libzipdeploy.so.0`), so a
//! program linked against the library records that name and keeps working
//! with any later build of the same major version (so a change that breaks
//! the C ABI needs a new major version); `install.sh` installs the matching
//! symlinks.
//!
//! The header is committed, so it must always match the code. The design:
//!
//! - The generated text is always written to `$OUT_DIR/zipdeploy.h`; a unit
//!   test in `src/ffi/tests.rs` embeds it with `include_str!` and fails when
//!   `include/zipdeploy.h` differs from it.
//! - In a developer build, this script also writes `include/zipdeploy.h`
//!   and the Go module's copy `examples/go/zipdeploy.h` (the module must
//!   carry its header to build from the module cache or a vendor tree) when
//!   (and only when) their content changed, and says so with a cargo
//!   warning, so the header follows the code and the change shows up in
//!   `git status` to be committed. `tests/ffi.rs` fails when the two copies
//!   differ.
//! - In check mode (`ZIPDEPLOY_CHECK_HEADER=1`, or `CI` set as CI services
//!   do; `.ci/run` sets the former) the source tree is never written: the
//!   test then compares the committed header with what the code generates,
//!   so a stale committed header fails CI instead of being silently fixed in
//!   the CI checkout.
//!
//! The build never fails because of the header: a cbindgen error is a
//! warning (rustc reports the underlying problem in `src/ffi/` anyway) and
//! leaves a placeholder in `$OUT_DIR` that makes the header test fail.
//!
//! Two parts of the header do not come from cbindgen's reading of the
//! functions and types:
//!
//! - Its top comment, the C conventions, is the module documentation of
//!   `src/ffi/mod.rs` (the `//!` lines), so there is one copy of that text.
//! - The result codes' `#define`s come from `src/ffi/code_table.rs`, the one
//!   table of codes, which this script includes with its own `codes!` macro
//!   (the crate includes it with another, making the Rust constants; cbindgen
//!   does not expand macros).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    // Also when the header itself changes: a hand edit is undone at once, and
    // after this script rewrote it, the next build reruns it once, finds it
    // current and stays quiet (cargo would otherwise replay the warning
    // below on every build).
    println!("cargo:rerun-if-changed=include/zipdeploy.h");
    println!("cargo:rerun-if-changed=examples/go/zipdeploy.h");
    println!("cargo:rerun-if-env-changed=ZIPDEPLOY_CHECK_HEADER");
    println!("cargo:rerun-if-env-changed=CI");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libzipdeploy.so.{major}");

    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    let header = match generate(&crate_dir) {
        Ok(text) => Some(text),
        Err(e) => {
            println!("cargo:warning=cbindgen could not generate include/zipdeploy.h: {e}");
            None
        }
    };
    let placeholder = "/* cbindgen failed; see the build warnings */\n".to_string();
    write_if_changed(
        &out_dir.join("zipdeploy.h"),
        header.as_ref().unwrap_or(&placeholder),
    );

    let Some(header) = header else { return };
    if check_mode() {
        return;
    }
    for committed in ["include/zipdeploy.h", "examples/go/zipdeploy.h"] {
        if write_if_changed(&crate_dir.join(committed), &header) {
            println!("cargo:warning=regenerated {committed} from src/ffi/; review and commit it");
        }
    }
}

/// Whether to leave the source tree alone (CI).
fn check_mode() -> bool {
    let set = |name: &str| {
        env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("ZIPDEPLOY_CHECK_HEADER") || set("CI")
}

/// A result code, as `src/ffi/code_table.rs` lists it.
struct Code {
    name: &'static str,
    value: i32,
    doc: &'static [&'static str],
}

/// Reads the table of result codes (see `src/ffi/code_table.rs`).
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal, $text:literal;)*) => {
        &[$(Code { name: stringify!($name), value: $value, doc: &[$($doc),*] }),*]
    };
}

/// The result codes, in the table's order.
const CODES: &[Code] = include!("src/ffi/code_table.rs");

/// The header text for the current `src/ffi/` and `cbindgen.toml`.
fn generate(crate_dir: &Path) -> Result<String, String> {
    let ffi = crate_dir.join("src").join("ffi");
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))?;
    let module = fs::read_to_string(ffi.join("mod.rs")).map_err(|e| e.to_string())?;
    config.header = Some(c_comment(&module_doc(&module))?);
    let var = |name: &str| env::var(name).map_err(|e| format!("{name}: {e}"));
    let version = var("CARGO_PKG_VERSION")?;
    let (major, minor, patch) = (
        var("CARGO_PKG_VERSION_MAJOR")?,
        var("CARGO_PKG_VERSION_MINOR")?,
        var("CARGO_PKG_VERSION_PATCH")?,
    );
    config.after_includes = Some(format!(
        "\n/** The version of the library this header describes; compare with zipdeploy_version(). */\n\
         #define ZIPDEPLOY_VERSION \"{version}\"\n\
         /** The same version as numbers, for preprocessor checks. */\n\
         #define ZIPDEPLOY_VERSION_MAJOR {major}\n\
         #define ZIPDEPLOY_VERSION_MINOR {minor}\n\
         #define ZIPDEPLOY_VERSION_PATCH {patch}\n{}",
        code_defines()
    ));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(ffi.join("mod.rs"))
        .generate()
        .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    bindings.write(&mut text);
    String::from_utf8(text).map_err(|e| e.to_string())
}

/// The leading `//!` lines of a module, without the marker.
fn module_doc(source: &str) -> Vec<&str> {
    source
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect()
}

/// Lines as a C block comment.
fn c_comment(lines: &[&str]) -> Result<String, String> {
    if lines.is_empty() || lines.iter().any(|l| l.contains("*/")) {
        return Err("src/ffi/mod.rs needs a module doc without \"*/\"".into());
    }
    let mut text = String::from("/*\n");
    for line in lines {
        text.push_str(if line.is_empty() { " *" } else { " * " });
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(" */");
    Ok(text)
}

/// The `#define` of each result code, with its documentation, as cbindgen
/// writes constants.
fn code_defines() -> String {
    let mut text = String::new();
    for code in CODES {
        text.push_str("\n/**\n");
        for line in code.doc {
            // Each line keeps the space after `///`.
            text.push_str(" *");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!(" */\n#define {} {}\n", code.name, code.value));
    }
    text
}

/// Writes `text` to `path` unless it already holds exactly that (so that
/// nothing depending on the file's mtime rebuilds). Returns whether it
/// wrote. A failure to write is a warning, never a build failure.
fn write_if_changed(path: &Path, text: &str) -> bool {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return false;
    }
    let written = path
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::write(path, text));
    match written {
        Ok(()) => true,
        Err(e) => {
            println!("cargo:warning=could not write {}: {e}", path.display());
            false
        }
    }
}
