//! The C ABI embedded for real: the C example (shared and static library,
//! and under valgrind), the C edge-case program, the Python ctypes wrapper
//! and the Go cgo package, all against a real HTTP server on 127.0.0.1.
//!
//! `cargo test` builds the library's cdylib and staticlib before it builds
//! this test, which finds them beside its own binary (see [`lib_dir`]). The tools these tests
//! drive (cc, python3, go, valgrind) are required: a missing tool fails the
//! test, it never skips it (`.ci/run` installs them).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::{Deploy, Sha256Digest};

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

fn sha(bytes: &[u8]) -> String {
    Sha256Digest::of(bytes).to_hex()
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
            "/v1.zip.minisig" => Reply::ok(signature.clone()),
            "/v1.zip.sha256" => Reply::ok(sidecar.clone()),
            "/v2.zip" => Reply::file_with_ranges(req, &v2, "\"v2\""),
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

#[derive(Clone, Copy)]
enum Linkage {
    Shared,
    Static,
}

/// Compiles a C program against the library with warnings as errors.
fn compile_c(source: &Path, out: &Path, linkage: Linkage) {
    let lib = lib_dir();
    let mut cc = Command::new("cc");
    cc.args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-pedantic", "-g"])
        .arg("-I")
        .arg(repo().join("include"))
        .arg(source)
        .arg("-o")
        .arg(out);
    match linkage {
        Linkage::Shared => {
            cc.arg(format!("-L{}", lib.display())).arg("-lzipdeploy");
        }
        Linkage::Static => {
            cc.arg(lib.join("libzipdeploy.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    expect_exit(&run(&mut cc, Duration::from_secs(180)), 0, "cc");
}

/// A command for a C program linked against the shared library.
fn c_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LD_LIBRARY_PATH", lib_dir());
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
    .env("LD_LIBRARY_PATH", lib_dir());
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

    // No LD_LIBRARY_PATH: the library is inside the program.
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
        .env("ZIPDEPLOY_TEST_URL_STALLED", packages.url("/stalled.zip"))
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
    assert!(err.contains("Ran 11 tests"), "{err}");
    assert!(err.trim_end().ends_with("OK"), "{err}");
    assert!(!err.contains("skipped"), "{err}");
}

#[test]
fn go_cgo_package() {
    let packages = Packages::start();
    let lib = lib_dir();
    let go_dir = repo().join("examples/go");
    // Go's caches live in <target>/ffi-go, reused between runs.
    let work = lib.ancestors().nth(2).unwrap().join("ffi-go");
    // Go's build cache does not see changes to C headers outside the
    // package; CGO_CFLAGS is part of its key, so a digest of the header in
    // it recompiles the cgo code whenever the header changes.
    let header = fs::read(repo().join("include/zipdeploy.h")).unwrap();
    let header_id = &sha(&header)[..16];
    let go = |args: &[&OsStr]| {
        let mut cmd = Command::new("go");
        cmd.args(args)
            .current_dir(&go_dir)
            .env(
                "CGO_CFLAGS",
                format!(
                    "-I{} -DZIPDEPLOY_HEADER_ID={header_id}",
                    repo().join("include").display()
                ),
            )
            .env("CGO_LDFLAGS", format!("-L{} -lzipdeploy", lib.display()))
            .env("CGO_ENABLED", "1")
            .env("LD_LIBRARY_PATH", &lib)
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", work.join("cache"))
            .env("GOPATH", work.join("path"))
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOWORK", "off")
            .env("GO111MODULE", "on");
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
        "TestNULInAStringIsRefused",
        "TestStatusAndRollback",
        "TestMirrorsAreTriedInOrder",
        "TestTheCacheServesASecondDeploy",
        "TestMinisignSignatures",
        "TestTheDigestFromASidecar",
        "TestASyncedRollback",
        "TestCancellingTheContextEndsAStalledDownloadWithinASecond",
        "TestTheLowSpeedRuleCutsAStalledDownload",
        "TestCACertFilesMakeAPrivateCATrusted",
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
