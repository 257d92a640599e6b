//! The C ABI embedded for real, the way users install it: the C library
//! installed by `install.sh` under a prefix and found with pkg-config (the C
//! example, shared and static, and under valgrind; the C edge-case program;
//! the Go module, also from a program outside the repository), and the
//! Python package installed by pip into a fresh virtualenv, all against a
//! real HTTP server on 127.0.0.1.
//!
//! `cargo test` builds the library's cdylib and staticlib before it builds
//! this test; `install.sh --profile dev` then finds them fresh and installs
//! them (see [`installed`]). The tools these tests drive (cc, pkg-config,
//! readelf, python3 with venv, go, valgrind) are required: a missing tool
//! fails the test, it never skips it (`tests/run.sh` installs them).

mod common;
use common::sha;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::Deploy;

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/<profile>/deps`, where `cargo test` puts the C libraries.
///
/// `cargo test` compiles the library with all its crate types (rlib, cdylib,
/// staticlib) before the integration tests, but leaves `libzipdeploy.so` and
/// `libzipdeploy.a` in `deps/`, beside this test's binary: only `cargo build`
/// also copies them up to `<target>/<profile>/`, so that copy may be missing
/// or stale here.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .expect("test binary in <target>/<profile>/deps")
        .to_path_buf();
    for lib in ["libzipdeploy.so", "libzipdeploy.a"] {
        assert!(
            dir.join(lib).is_file(),
            "{} missing: cargo builds it before the tests",
            dir.join(lib).display()
        );
    }
    dir
}

/// `<target>`, the cargo target directory this test was built in.
fn target_dir() -> PathBuf {
    lib_dir().ancestors().nth(2).unwrap().to_path_buf()
}

/// The cargo profile this test was built with (`dev` for `target/debug`).
fn profile() -> String {
    let dir = lib_dir();
    let name = dir.parent().unwrap().file_name().unwrap().to_str().unwrap();
    if name == "debug" { "dev" } else { name }.to_string()
}

/// What `install.sh --library-type` installs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Linkage {
    /// `both` (the default): the shared and the static library.
    Shared,
    /// `static`: no shared library, so `pkg-config --static` links the archive.
    Static,
}

/// The prefix `install.sh` installed the library into, once per test run:
/// `<target>/ffi-install/{both,static}`, a stable path so that Go's build
/// cache (keyed by the cgo flags) stays warm between runs.
fn installed(linkage: Linkage) -> &'static Path {
    static BOTH: OnceLock<PathBuf> = OnceLock::new();
    static STATIC: OnceLock<PathBuf> = OnceLock::new();
    let (cell, kind) = match linkage {
        Linkage::Shared => (&BOTH, "both"),
        Linkage::Static => (&STATIC, "static"),
    };
    cell.get_or_init(|| {
        let prefix = target_dir().join("ffi-install").join(kind);
        let _ = fs::remove_dir_all(&prefix);
        let mut cmd = Command::new(repo().join("install.sh"));
        cmd.arg("--prefix")
            .arg(&prefix)
            .args(["--profile", &profile(), "--library-type", kind])
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("DESTDIR");
        let output = run(&mut cmd, Duration::from_secs(900));
        expect_exit(&output, 0, "install.sh");
        prefix
    })
}

/// `pkg-config [--static] --cflags --libs zipdeploy` for an installed prefix.
fn pkg_config_flags(linkage: Linkage) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    if linkage == Linkage::Static {
        cmd.arg("--static");
    }
    cmd.args(["--cflags", "--libs", "zipdeploy"])
        .env("PKG_CONFIG_PATH", installed(linkage).join("lib/pkgconfig"));
    let (out, _) = expect_exit(&run(&mut cmd, Duration::from_secs(30)), 0, "pkg-config");
    out.split_whitespace().map(str::to_string).collect()
}

/// The dynamic section of an ELF file (`readelf -d`).
fn dynamic_section(file: &Path) -> String {
    let output = run(
        Command::new("readelf").arg("-d").arg(file),
        Duration::from_secs(30),
    );
    expect_exit(&output, 0, "readelf -d").0
}

/// A server with the packages the embeddings deploy, v1's minisign
/// signature and SHA-256 sidecar.
struct Packages {
    server: TestServer,
    v1: Vec<u8>,
    signer: common::signing::Signer,
}

impl Packages {
    fn start() -> Self {
        let v1 = app_zip("1");
        let v2 = app_zip("2");
        let served = v1.clone();
        let signer = common::signing::Signer::new();
        let signature = signer.sign(&v1);
        let sidecar = format!("{}  v1.zip\n", sha(&v1));
        let server = TestServer::start(move |req, _| match req.path.as_str() {
            "/v1.zip" => Reply::file_with_ranges(req, &served, "\"v1\""),
            // A static file server: 304 to its ETag in If-None-Match.
            "/conditional.zip" if req.header("if-none-match") == Some("\"c1\"") => {
                let mut reply = Reply::ok(Vec::new()).header("ETag", "\"c1\"");
                reply.status = 304;
                reply
            }
            "/conditional.zip" => Reply::file_with_ranges(req, &served, "\"c1\""),
            "/stall.zip" => {
                Reply::ok(served.clone()).fault(Fault::StallAfter(100, Duration::from_secs(3)))
            }
            "/v1.zip.minisig" => Reply::ok(signature.clone()),
            "/v1.zip.sha256" => Reply::ok(sidecar.clone()),
            "/v2.zip" => Reply::file_with_ranges(req, &v2, "\"v2\""),
            // v1 for holders of a mirror's own token (per-origin headers).
            "/private.zip" if req.header("x-mirror-token") == Some("m1") => {
                Reply::ok(served.clone())
            }
            "/private.zip" => Reply::status(403),
            // A little of the body, then silence: for prompt cancels.
            "/stalled.zip" => {
                Reply::ok(v2.clone()).fault(Fault::StallAfter(100, Duration::from_secs(30)))
            }
            _ => Reply::status(404),
        });
        Packages { server, v1, signer }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The tree the Rust API installs from v1, to compare against.
    fn reference_tree(&self) -> Snapshot {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        Deploy::new(&self.url("/v1.zip"))
            .unwrap()
            .dest(&dest)
            .durable(false)
            .run()
            .unwrap();
        snapshot(&dest)
    }
}

/// Runs a command to completion (at most `limit`), with its output captured.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (is the tool installed?)"));
    // Drain both pipes on threads so a chatty child cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code and returns (stdout, stderr).
fn expect_exit(output: &Output, code: i32, what: &str) -> (String, String) {
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: unexpected exit {:?}\n--- stdout\n{out}\n--- stderr\n{err}",
        output.status
    );
    (out, err)
}

/// Compiles a C program against the installed library, with warnings as
/// errors and no flags but pkg-config's for the library.
fn compile_c(source: &Path, out: &Path, linkage: Linkage) {
    let mut cc = Command::new("cc");
    cc.args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-pedantic", "-g"])
        .arg(source)
        .args(pkg_config_flags(linkage))
        .arg("-o")
        .arg(out);
    expect_exit(&run(&mut cc, Duration::from_secs(180)), 0, "cc");
}

/// A command for a program linked against the installed library: it finds
/// it by itself (the rpath from zipdeploy.pc), without LD_LIBRARY_PATH.
fn c_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Runs a program under valgrind; fails on any error or definite/indirect
/// leak, and returns the program's own exit code with its output.
fn valgrind(program: &Path, args: &[&OsStr]) -> (i32, String, String) {
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=99",
        "--track-origins=yes",
    ])
    .arg(program)
    .args(args)
    .env_remove("LD_LIBRARY_PATH");
    let output = run(&mut cmd, Duration::from_secs(300));
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    let code = output.status.code().expect("exit code");
    assert_ne!(code, 99, "valgrind found errors or leaks:\n{err}");
    assert!(
        err.contains("ERROR SUMMARY: 0 errors"),
        "valgrind reported errors:\n{err}"
    );
    assert!(
        err.contains("definitely lost: 0 bytes") || err.contains("no leaks are possible"),
        "{err}"
    );
    (code, out, err)
}

fn line_value<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {key:?} line in\n{stdout}"))
}

#[test]
fn install_sh_installs_a_versioned_library_header_and_pc_file() {
    let prefix = installed(Linkage::Shared);
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = prefix.join("lib");
    let real = format!("libzipdeploy.so.{version}");
    let soname = format!("libzipdeploy.so.{major}");
    assert!(lib.join(&real).is_file() && !lib.join(&real).is_symlink());
    assert_eq!(fs::read_link(lib.join(&soname)).unwrap(), Path::new(&real));
    assert_eq!(
        fs::read_link(lib.join("libzipdeploy.so")).unwrap(),
        Path::new(&soname)
    );
    assert!(lib.join("libzipdeploy.a").is_file());
    assert!(dynamic_section(&lib.join(&real)).contains(&format!("Library soname: [{soname}]")));
    assert_eq!(
        fs::read(prefix.join("include/zipdeploy.h")).unwrap(),
        fs::read(repo().join("include/zipdeploy.h")).unwrap()
    );
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert_eq!(
            fs::read(prefix.join("share/doc/zipdeploy").join(license)).unwrap(),
            fs::read(repo().join(license)).unwrap()
        );
    }
    let pc = fs::read_to_string(lib.join("pkgconfig/zipdeploy.pc")).unwrap();
    assert!(
        pc.starts_with(&format!("prefix={}\n", prefix.display())),
        "{pc}"
    );
    assert!(pc.contains(&format!("\nVersion: {version}\n")), "{pc}");
    let mut modversion = Command::new("pkg-config");
    modversion
        .args(["--modversion", "zipdeploy"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"));
    let (out, _) = expect_exit(
        &run(&mut modversion, Duration::from_secs(30)),
        0,
        "pkg-config",
    );
    assert_eq!(out.trim(), version);

    // The numeric version macros agree with the string and the library; a
    // program built with only pkg-config's flags needs libzipdeploy.so.0,
    // which it finds without LD_LIBRARY_PATH.
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("version.c");
    fs::write(
        &source,
        r#"#include <stdio.h>
#include <string.h>
#include <zipdeploy.h>

int main(void) {
    char numbers[64];
    snprintf(numbers, sizeof numbers, "%d.%d.%d", ZIPDEPLOY_VERSION_MAJOR,
             ZIPDEPLOY_VERSION_MINOR, ZIPDEPLOY_VERSION_PATCH);
    printf("%s %s %s\n", numbers, ZIPDEPLOY_VERSION, zipdeploy_version());
    return 0;
}
"#,
    )
    .unwrap();
    let program = tmp.path().join("version");
    compile_c(&source, &program, Linkage::Shared);
    let dynamic = dynamic_section(&program);
    assert!(
        dynamic.contains(&format!("Shared library: [{soname}]")),
        "{dynamic}"
    );
    let output = run(&mut c_command(&program), Duration::from_secs(30));
    let (out, _) = expect_exit(&output, 0, "version");
    assert_eq!(out.trim(), format!("{version} {version} {version}"));
}

#[test]
fn c_example_with_the_shared_library() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("deploy");
    compile_c(
        &repo().join("examples/c/deploy.c"),
        &program,
        Linkage::Shared,
    );
    let dest = tmp.path().join("app");
    let digest = sha(&packages.v1);

    let output = run(
        c_command(&program)
            .arg(packages.url("/v1.zip"))
            .arg(&dest)
            .arg(&digest),
        Duration::from_secs(60),
    );
    let (out, err) = expect_exit(&output, 0, "deploy");
    assert_eq!(line_value(&out, "digest"), digest);
    assert_eq!(line_value(&out, "noop"), "false");
    assert_eq!(line_value(&out, "files"), "4");
    assert_eq!(line_value(&out, "entries"), "5");
    assert_eq!(
        line_value(&out, "bytes_downloaded"),
        packages.v1.len().to_string()
    );
    assert_eq!(line_value(&out, "dest"), dest.display().to_string());
    assert!(err.contains("fetch") && err.contains("extract") && err.contains("install"));
    assert_eq!(snapshot(&dest), packages.reference_tree());

    // Again: a no-op.
    let output = run(
        c_command(&program)
            .arg(packages.url("/v1.zip"))
            .arg(&dest)
            .arg(&digest),
        Duration::from_secs(60),
    );
    let (out, _) = expect_exit(&output, 0, "second deploy");
    assert_eq!(line_value(&out, "noop"), "true");

    // A 404: exit class 3, the message names the status, DEST untouched.
    let before = snapshot(&dest);
    let output = run(
        c_command(&program)
            .arg(packages.url("/missing.zip"))
            .arg(&dest),
        Duration::from_secs(60),
    );
    let (out, err) = expect_exit(&output, 3, "404");
    assert!(out.is_empty(), "no report on failure: {out}");
    assert!(
        err.contains("error 30 (HTTP status): HTTP status 404 fetching"),
        "{err}"
    );
    assert_eq!(snapshot(&dest), before);

    // A wrong digest: class 4. A bad digest: class 2.
    let output = run(
        c_command(&program)
            .arg(packages.url("/v2.zip"))
            .arg(&dest)
            .arg("0".repeat(64)),
        Duration::from_secs(60),
    );
    let (_, err) = expect_exit(&output, 4, "digest mismatch");
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    assert_eq!(snapshot(&dest), before);
    let output = run(
        c_command(&program)
            .arg(packages.url("/v2.zip"))
            .arg(&dest)
            .arg("xyz"),
        Duration::from_secs(60),
    );
    let (_, err) = expect_exit(&output, 2, "invalid digest");
    assert!(err.contains("error 21 (invalid digest)"), "{err}");
}

#[test]
fn c_example_with_the_static_library() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("deploy-static");
    compile_c(
        &repo().join("examples/c/deploy.c"),
        &program,
        Linkage::Static,
    );
    let dest = tmp.path().join("app");

    // Linked from libzipdeploy.a: nothing of the library is loaded at run time.
    let dynamic = dynamic_section(&program);
    assert!(dynamic.contains("Shared library: [libc.so.6]"), "{dynamic}");
    assert!(!dynamic.contains("libzipdeploy"), "{dynamic}");
    let output = run(
        Command::new(&program)
            .env_remove("LD_LIBRARY_PATH")
            .arg(packages.url("/v1.zip"))
            .arg(&dest),
        Duration::from_secs(60),
    );
    let (out, _) = expect_exit(&output, 0, "static deploy");
    assert_eq!(line_value(&out, "digest"), sha(&packages.v1));
    assert_eq!(snapshot(&dest), packages.reference_tree());

    let fresh = tmp.path().join("fresh");
    let output = run(
        Command::new(&program)
            .arg(packages.url("/missing.zip"))
            .arg(&fresh),
        Duration::from_secs(60),
    );
    let (_, err) = expect_exit(&output, 3, "static 404");
    assert!(err.contains("HTTP status 404"), "{err}");
    assert!(!fresh.exists());
    assert_eq!(
        names_in(tmp.path()),
        [".app.zipdeploy", ".fresh.zipdeploy", "app", "deploy-static"],
        "nothing beside each DEST but its state dir"
    );
}

#[test]
fn c_abi_edge_cases() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("abi");
    compile_c(&repo().join("tests/c/abi.c"), &program, Linkage::Shared);
    let output = run(
        c_command(&program)
            .arg(packages.url("/v1.zip"))
            .arg(tmp.path().join("app"))
            .arg(packages.url("/stalled.zip")),
        Duration::from_secs(60),
    );
    let (out, _) = expect_exit(&output, 0, "abi");
    assert!(out.contains("abi: all checks passed"));
}

#[test]
fn c_programs_under_valgrind_leak_nothing() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let deploy = tmp.path().join("deploy");
    let abi = tmp.path().join("abi");
    compile_c(
        &repo().join("examples/c/deploy.c"),
        &deploy,
        Linkage::Shared,
    );
    compile_c(&repo().join("tests/c/abi.c"), &abi, Linkage::Shared);
    let dest = tmp.path().join("app");
    let url = |p: &str| packages.url(p);

    // Success.
    let (code, out, _) = valgrind(
        &deploy,
        &[
            url("/v1.zip").as_ref(),
            dest.as_os_str(),
            sha(&packages.v1).as_ref(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(snapshot(&dest), packages.reference_tree());
    // Failures: HTTP 404 and a digest mismatch (owned error objects).
    let (code, _, err) = valgrind(&deploy, &[url("/missing.zip").as_ref(), dest.as_os_str()]);
    assert_eq!(code, 3, "{err}");
    let zeros = "0".repeat(64);
    let (code, _, err) = valgrind(
        &deploy,
        &[url("/v2.zip").as_ref(), dest.as_os_str(), zeros.as_ref()],
    );
    assert_eq!(code, 4, "{err}");
    // NULLs, cancel, re-entry, no-op.
    let (code, out, err) = valgrind(
        &abi,
        &[
            url("/v1.zip").as_ref(),
            tmp.path().join("abi-app").as_os_str(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
}

/// The URLs and digest the Python and Go tests read from the environment.
fn test_env(cmd: &mut Command, packages: &Packages) {
    cmd.env("ZIPDEPLOY_TEST_URL", packages.url("/v1.zip"))
        .env("ZIPDEPLOY_TEST_URL_V2", packages.url("/v2.zip"))
        .env("ZIPDEPLOY_TEST_URL_404", packages.url("/missing.zip"))
        .env(
            "ZIPDEPLOY_TEST_URL_CONDITIONAL",
            packages.url("/conditional.zip"),
        )
        .env("ZIPDEPLOY_TEST_URL_STALLED", packages.url("/stalled.zip"))
        .env("ZIPDEPLOY_TEST_URL_STALL", packages.url("/stall.zip"))
        .env("ZIPDEPLOY_TEST_URL_PRIVATE", packages.url("/private.zip"))
        .env("ZIPDEPLOY_TEST_SHA256", sha(&packages.v1))
        .env(
            "ZIPDEPLOY_TEST_MINISIGN_KEY",
            packages.signer.public_base64(),
        );
}

#[test]
fn python_ctypes_wrapper() {
    let packages = Packages::start();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "unittest", "-v", "test_zipdeploy"])
        .current_dir(repo().join("examples/python"))
        .env("ZIPDEPLOY_LIB", lib_dir().join("libzipdeploy.so"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    test_env(&mut cmd, &packages);
    let output = run(&mut cmd, Duration::from_secs(120));
    let (_, err) = expect_exit(&output, 0, "python3 -m unittest");
    assert!(err.contains("Ran 23 tests"), "{err}");
    assert!(err.trim_end().ends_with("OK"), "{err}");
    assert!(!err.contains("skipped"), "{err}");
}

/// Checks the wrapper that `pip install` put into a virtualenv, run from
/// outside the repository: argv is URL DEST SHA256 URL_404.
const PIP_INSTALLED_CHECK: &str = r#"
import importlib.metadata, pathlib, sys
import zipdeploy

url, dest, sha, url_404 = sys.argv[1:5]
package = pathlib.Path(zipdeploy.__file__).resolve().parent
print("package:", package)
print("library:", zipdeploy.load_library()._name)
print("typed:", (package / "py.typed").is_file())
print("licenses:", all((package / name).is_file() for name in ("LICENSE-MIT", "LICENSE-APACHE")))
print("version:", zipdeploy.version())
print("distribution:", importlib.metadata.version("zipdeploy"))
report = zipdeploy.deploy(url, dest, sha, max_entries=10, stall_timeout=10, retries=0)
print("digest:", report.digest)
print("signed_by:", report.signed_by)
try:
    zipdeploy.deploy(url_404, dest, retries=0)
except OSError as err:
    print("404:", type(err).__name__, err.code)
"#;

#[test]
fn python_package_pip_installs_into_a_fresh_venv() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let output = run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(300),
    );
    expect_exit(&output, 0, "python3 -m venv");
    // pip builds the package in place: setup.py runs cargo in this checkout
    // (the profile this test was built with, so nothing is rebuilt) and
    // bundles libzipdeploy.so. setuptools comes from PyPI.
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--disable-pip-version-check", "--no-input"])
        .arg(repo().join("examples/python"))
        .current_dir(tmp.path())
        .env("ZIPDEPLOY_CARGO_PROFILE", profile())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("ZIPDEPLOY_LIB")
        .env_remove("PYTHONPATH");
    let output = run(&mut pip, Duration::from_secs(900));
    expect_exit(&output, 0, "pip install examples/python");

    let dest = tmp.path().join("app");
    let mut python = Command::new(venv.join("bin/python"));
    python
        .args(["-c", PIP_INSTALLED_CHECK])
        .arg(packages.url("/v1.zip"))
        .arg(&dest)
        .arg(sha(&packages.v1))
        .arg(packages.url("/missing.zip"))
        .current_dir(tmp.path())
        .env_remove("ZIPDEPLOY_LIB")
        .env_remove("PYTHONPATH")
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run(&mut python, Duration::from_secs(120));
    let (out, _) = expect_exit(&output, 0, "the pip-installed package");
    let package = PathBuf::from(line_value(&out, "package"));
    assert!(
        package.starts_with(venv.canonicalize().unwrap()),
        "imported from {} instead of the venv",
        package.display()
    );
    assert_eq!(
        line_value(&out, "library"),
        package.join("libzipdeploy.so").display().to_string(),
        "the bundled library"
    );
    assert_eq!(line_value(&out, "typed"), "True");
    assert_eq!(line_value(&out, "licenses"), "True");
    assert_eq!(line_value(&out, "version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(line_value(&out, "distribution"), env!("CARGO_PKG_VERSION"));
    assert_eq!(line_value(&out, "digest"), sha(&packages.v1));
    assert_eq!(line_value(&out, "signed_by"), "None");
    assert_eq!(line_value(&out, "404"), "NetworkError 30");
    assert_eq!(snapshot(&dest), packages.reference_tree());
}

/// `go ARGS` in `dir`, building against the installed library through
/// `#cgo pkg-config: zipdeploy` and nothing else: no CGO_* flags, no
/// LD_LIBRARY_PATH (the rpath from zipdeploy.pc finds the library).
fn go_command(dir: &Path, args: &[&OsStr]) -> Command {
    // Go's caches live in <target>/ffi-go, reused between runs.
    let work = target_dir().join("ffi-go");
    let mut cmd = Command::new("go");
    cmd.args(args)
        .current_dir(dir)
        .env(
            "PKG_CONFIG_PATH",
            installed(Linkage::Shared).join("lib/pkgconfig"),
        )
        .env_remove("CGO_CFLAGS")
        .env_remove("CGO_CPPFLAGS")
        .env_remove("CGO_LDFLAGS")
        .env_remove("LD_LIBRARY_PATH")
        .env("CGO_ENABLED", "1")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", work.join("cache"))
        .env("GOPATH", work.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on");
    cmd
}

#[test]
fn go_module_header_is_the_c_header() {
    // The Go module carries its own copy (it must build from the module
    // cache or a vendor tree); build.rs writes both.
    assert!(
        fs::read(repo().join("examples/go/zipdeploy.h")).unwrap()
            == fs::read(repo().join("include/zipdeploy.h")).unwrap(),
        "examples/go/zipdeploy.h differs from include/zipdeploy.h: run `cargo build` and commit both"
    );
}

#[test]
fn go_module_names_every_result_code() {
    // Go lists its Code* constants by hand (cgo cannot enumerate a header's
    // defines): a code added to the C ABI must be named there too.
    let header = fs::read_to_string(repo().join("include/zipdeploy.h")).unwrap();
    let go = fs::read_to_string(repo().join("examples/go/zipdeploy.go")).unwrap();
    let codes: Vec<&str> = header
        .lines()
        .filter_map(|line| line.strip_prefix("#define ZIPDEPLOY_"))
        .filter_map(|define| define.split_once(' '))
        .filter(|(name, value)| !name.starts_with("VERSION") && value.parse::<i32>().is_ok())
        .map(|(name, _)| name)
        .collect();
    assert!(
        codes.len() >= 29,
        "the header's codes were found: {codes:?}"
    );
    for name in codes {
        assert!(
            go.contains(&format!(" = C.ZIPDEPLOY_{name}\n")),
            "examples/go/zipdeploy.go has no Code constant for ZIPDEPLOY_{name}"
        );
    }
}

#[test]
fn go_cgo_package() {
    let packages = Packages::start();
    let go_dir = repo().join("examples/go");
    let go = |args: &[&OsStr]| {
        let mut cmd = go_command(&go_dir, args);
        test_env(&mut cmd, &packages);
        cmd
    };

    let output = run(
        &mut go(&["vet".as_ref(), "./...".as_ref()]),
        Duration::from_secs(600),
    );
    expect_exit(&output, 0, "go vet");
    let output = run(
        &mut go(&["test", "-count=1", "-v", "./..."].map(OsStr::new)),
        Duration::from_secs(600),
    );
    let (out, _) = expect_exit(&output, 0, "go test");
    for test in [
        "TestVersionMatchesHeader",
        "TestDeployReportsAndRedeploysAsNoOp",
        "TestHTTP404IsANetworkError",
        "TestInvalidDigestIsAUsageError",
        "TestCancellingTheContextCancelsTheDeploy",
        "TestAPanicInProgressCancelsAndIsReraised",
        "TestAPanicAtTheLastEventIsReraisedAfterTheDeploy",
        "TestNULInAStringIsRefused",
        "TestACountTooBigForItsCTypeIsRefused",
        "TestStatusAndRollback",
        "TestMirrorsAreTriedInOrder",
        "TestTheCacheServesASecondDeploy",
        "TestMinisignSignatures",
        "TestTheDigestFromASidecar",
        "TestASyncedRollback",
        "TestCancellingTheContextEndsAStalledDownloadWithinASecond",
        "TestTheLowSpeedRuleCutsAStalledDownload",
        "TestErrorsMatchTheSentinelOfTheirClass",
        "ExampleDeploy",
        "ExampleError",
        "ExampleRollback",
        "TestCACertFilesMakeAPrivateCATrusted",
        "TestNetrcFileGivesCredentialsToItsHost",
        "TestCancellingTheContextEndsAWaitForAnotherDeploysLockWithinASecond",
        "TestCancellingTheContextEndsARollbacksWaitForTheLockWithinASecond",
        "TestPathAndMetadataLimitsAreOptions",
        "TestHeadersForGoToTheirOriginOnly",
    ] {
        assert!(
            out.contains(&format!("--- PASS: {test} ")),
            "{test} did not pass:\n{out}"
        );
    }
    assert!(!out.contains("--- SKIP"), "{out}");

    // The command-line example, built and run.
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("go-deploy");
    let build = [
        OsStr::new("build"),
        OsStr::new("-o"),
        program.as_os_str(),
        OsStr::new("./cmd/deploy"),
    ];
    expect_exit(
        &run(&mut go(&build), Duration::from_secs(600)),
        0,
        "go build",
    );
    let dest = tmp.path().join("app");
    let output = run(
        c_command(&program)
            .arg(packages.url("/v1.zip"))
            .arg(&dest)
            .arg(sha(&packages.v1)),
        Duration::from_secs(60),
    );
    let (out, err) = expect_exit(&output, 0, "go deploy");
    assert_eq!(line_value(&out, "digest"), sha(&packages.v1));
    assert!(err.contains("install"), "{err}");
    assert_eq!(snapshot(&dest), packages.reference_tree());
    // A mirror behind a missing URL, and a signature required.
    let signed = tmp.path().join("signed");
    let output = run(
        c_command(&program)
            .arg("-mirror")
            .arg(packages.url("/v1.zip"))
            .arg("-minisign-key")
            .arg(packages.signer.public_base64())
            .arg(packages.url("/missing.zip"))
            .arg(&signed),
        Duration::from_secs(60),
    );
    let (out, _) = expect_exit(&output, 0, "go deploy -mirror -minisign-key");
    assert_eq!(line_value(&out, "source"), packages.url("/v1.zip"));
    assert_eq!(line_value(&out, "signed_by"), packages.signer.key_id());
    assert_eq!(snapshot(&signed), packages.reference_tree());
    let output = run(
        c_command(&program)
            .arg(packages.url("/missing.zip"))
            .arg(&dest),
        Duration::from_secs(60),
    );
    let (_, err) = expect_exit(&output, 3, "go deploy 404");
    assert!(err.contains("HTTP status 404"), "{err}");
    // The digest from a sidecar: v2 checked against v1's is refused.
    let output = run(
        c_command(&program)
            .arg("-sha256-from")
            .arg(packages.url("/v1.zip.sha256"))
            .arg(packages.url("/v2.zip"))
            .arg(tmp.path().join("sidecar")),
        Duration::from_secs(60),
    );
    let (_, err) = expect_exit(&output, 4, "go deploy -sha256-from");
    assert!(err.contains("mismatch"), "{err}");
    assert!(!tmp.path().join("sidecar").exists());
}

/// What a program outside the repository writes to use the Go module.
const OUTSIDE_GO_MOD: &str = "module example.com/outside

go 1.19

require github.com/zipdeploy/zipdeploy/examples/go v0.0.0

replace github.com/zipdeploy/zipdeploy/examples/go => REPO/examples/go
";

const OUTSIDE_MAIN_GO: &str = r#"package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/zipdeploy/zipdeploy/examples/go"
)

func main() {
	report, err := zipdeploy.Deploy(context.Background(), zipdeploy.Options{URL: os.Args[1], Dest: os.Args[2], SHA256: os.Args[3]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("digest:", report.Digest)
	_, err = zipdeploy.Deploy(context.Background(), zipdeploy.Options{URL: os.Args[4], Dest: os.Args[2], Retries: -1})
	fmt.Println("404 is ErrNetwork:", errors.Is(err, zipdeploy.ErrNetwork))
}
"#;

#[test]
fn go_module_builds_from_outside_the_repository() {
    let packages = Packages::start();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(
        outside.join("go.mod"),
        OUTSIDE_GO_MOD.replace("REPO", &repo().display().to_string()),
    )
    .unwrap();
    fs::write(outside.join("main.go"), OUTSIDE_MAIN_GO).unwrap();
    let dest = tmp.path().join("app");
    let check = |program: &Path| {
        let _ = fs::remove_dir_all(&dest);
        let output = run(
            c_command(program)
                .arg(packages.url("/v1.zip"))
                .arg(&dest)
                .arg(sha(&packages.v1))
                .arg(packages.url("/missing.zip")),
            Duration::from_secs(60),
        );
        let (out, _) = expect_exit(&output, 0, "outside program");
        assert_eq!(line_value(&out, "digest"), sha(&packages.v1));
        assert_eq!(line_value(&out, "404 is ErrNetwork"), "true");
        assert_eq!(snapshot(&dest), packages.reference_tree());
    };

    // Through the replace directive.
    let program = tmp.path().join("outside-mod");
    let build = [
        OsStr::new("build"),
        OsStr::new("-o"),
        program.as_os_str(),
        OsStr::new("."),
    ];
    expect_exit(
        &run(&mut go_command(&outside, &build), Duration::from_secs(600)),
        0,
        "go build",
    );
    check(&program);

    // Vendored: the module's files, header included, copied into vendor/,
    // and nothing outside it used.
    let vendor = [OsStr::new("mod"), OsStr::new("vendor")];
    expect_exit(
        &run(&mut go_command(&outside, &vendor), Duration::from_secs(120)),
        0,
        "go mod vendor",
    );
    assert!(outside
        .join("vendor/github.com/zipdeploy/zipdeploy/examples/go/zipdeploy.h")
        .is_file());
    let program = tmp.path().join("outside-vendored");
    let build = [
        OsStr::new("build"),
        OsStr::new("-mod=vendor"),
        OsStr::new("-o"),
        program.as_os_str(),
        OsStr::new("."),
    ];
    expect_exit(
        &run(&mut go_command(&outside, &build), Duration::from_secs(600)),
        0,
        "go build -mod=vendor",
    );
    check(&program);
}
