//! The example CLI (`examples/zipdeploy/`) run as a subprocess, the way a
//! container runs its entrypoint, against a real HTTP server on 127.0.0.1.

mod common;
use common::sha;

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::cli::{self, Run};
use common::*;

/// The CLI with a clean environment: nothing from the host (PACKAGE_*,
/// ZIPDEPLOY_*) leaks in, only PATH and HOME.
fn zipdeploy() -> Command {
    let mut cmd = cli::command();
    cmd.env(
        "HOME",
        std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
    );
    cmd
}

fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(zipdeploy().args(args))
}

fn run_with(cmd: &mut Command) -> Run {
    cli::run(cmd)
}

/// A temp dir whose `app` is the DEST used by most tests.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("app")
    }

    fn dest_str(&self) -> String {
        self.dest().to_str().unwrap().to_string()
    }

    /// Installs `pkg` so a later failure has a previous tree to keep.
    fn install(&self, pkg: &[u8]) -> Snapshot {
        let server = TestServer::serving(pkg.to_vec());
        run(["--url", &server.url("/app.zip"), "--dest", &self.dest_str()]).expect(0);
        snapshot(&self.dest())
    }
}

/// Parses `json` with python3's json module and prints the values at
/// `paths` (e.g. `["digest", "timings_ms.total"]`), one per line.
fn json_values(json: &str, paths: &[&str]) -> Vec<String> {
    let script = "import json, sys\n\
        doc = json.loads(sys.stdin.read())\n\
        for path in sys.argv[1:]:\n\
        \x20   value = doc\n\
        \x20   for key in path.split('.'):\n\
        \x20       value = value[key]\n\
        \x20   print(json.dumps(value))\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(paths)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed to check the JSON output");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not valid JSON: {json:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

// --- success ----------------------------------------------------------------

#[test]
fn installs_with_sha256_and_prints_a_summary() {
    let sandbox = Sandbox::new();
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();
    let first = run(["--url", &url, "--sha256", &sha(&pkg), "--dest", &dest]).expect(0);
    assert_eq!(read(sandbox.dest().join("VERSION")), b"1");
    assert_eq!(first.stdout, "");
    assert_eq!(
        first.stderr.lines().count(),
        1,
        "one summary line: {:?}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .starts_with(&format!("zipdeploy: installed {} into ", sha(&pkg))),
        "{:?}",
        first.stderr
    );
    assert!(first.stderr.contains("4 files"), "{:?}", first.stderr);
    assert!(
        !first.stderr.contains('\r'),
        "no progress when not a terminal"
    );

    let again = run(["--url", &url, "--sha256", &sha(&pkg), "--dest", &dest]).expect(0);
    assert!(
        again.stderr.contains("already installed"),
        "{:?}",
        again.stderr
    );
    assert_eq!(server.requests().len(), 1, "the no-op does not download");

    let quiet = run([
        "--url",
        &url,
        "--sha256",
        &sha(&pkg),
        "--dest",
        &dest,
        "--quiet",
    ]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "", "")
    );
}

#[test]
fn installs_without_sha256_with_equals_syntax() {
    let sandbox = Sandbox::new();
    let pkg = app_zip("2");
    let server = TestServer::serving(pkg.clone());
    let out = run([
        format!("--url={}", server.url("/app.zip")),
        format!("--dest={}", sandbox.dest_str()),
    ])
    .expect(0);
    assert_eq!(read(sandbox.dest().join("VERSION")), b"2");
    assert!(out.stderr.contains(&sha(&pkg)), "{:?}", out.stderr);
}

#[test]
/// stderr is a pipe here: `--progress` gives plain lines, as `docker logs`
/// would otherwise show every `\r` frame.
fn forced_progress_in_a_pipe_prints_plain_lines() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let out = run([
        "--url",
        &server.url("/app.zip"),
        "--dest",
        &sandbox.dest_str(),
        "--progress",
    ])
    .expect(0);
    assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines[0].starts_with("zipdeploy: fetch "), "{lines:?}");
    assert!(
        lines.last().unwrap().starts_with("zipdeploy: installed"),
        "{lines:?}"
    );
}

// --- environment --------------------------------------------------------------

#[test]
fn reads_package_variables() {
    let sandbox = Sandbox::new();
    let pkg = app_zip("env");
    let server = TestServer::serving(pkg.clone());
    run_with(
        zipdeploy()
            .env("PACKAGE_ZIP_URL", server.url("/app.zip"))
            .env("PACKAGE_SHA256", sha(&pkg))
            .env("PACKAGE_DIR", sandbox.dest()),
    )
    .expect(0);
    assert_eq!(read(sandbox.dest().join("VERSION")), b"env");

    let wrong = sha(b"something else");
    let mismatch = run_with(
        zipdeploy()
            .env("PACKAGE_ZIP_URL", server.url("/app.zip"))
            .env("PACKAGE_SHA256", &wrong)
            .env("PACKAGE_DIR", sandbox.dest()),
    )
    .expect(4);
    assert!(
        mismatch.error_line().contains(&wrong),
        "PACKAGE_SHA256 is used"
    );
}

#[test]
fn reads_zipdeploy_variables_and_flags_beat_them() {
    let sandbox = Sandbox::new();
    let server = TestServer::start(|req, _| match req.path.as_str() {
        "/one.zip" => Reply::ok(app_zip("one")),
        _ => Reply::ok(app_zip("two")),
    });
    let base = || {
        let mut cmd = zipdeploy();
        cmd.env("PACKAGE_ZIP_URL", server.url("/one.zip"))
            .env("PACKAGE_DIR", sandbox.dest());
        cmd
    };
    let limited = run_with(base().env("ZIPDEPLOY_MAX_ENTRIES", "2")).expect(6);
    assert!(
        limited.error_line().contains("entry count"),
        "{}",
        limited.stderr
    );
    assert!(!sandbox.dest().exists());

    run_with(
        base()
            .env("ZIPDEPLOY_MAX_ENTRIES", "2")
            .args(["--max-entries", "10"]),
    )
    .expect(0);
    assert_eq!(read(sandbox.dest().join("VERSION")), b"one");

    let json = run_with(
        base()
            .env("ZIPDEPLOY_JSON", "1")
            .env("ZIPDEPLOY_QUIET", "true"),
    )
    .expect(0);
    assert_eq!(json_values(&json.stdout, &["noop"]), ["true"]);
    assert_eq!(json.stderr, "");

    run_with(base().args(["--url", &server.url("/two.zip")])).expect(0);
    assert_eq!(
        read(sandbox.dest().join("VERSION")),
        b"two",
        "--url beats PACKAGE_ZIP_URL"
    );
}

#[test]
fn empty_variables_count_as_unset() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    run_with(
        zipdeploy()
            .env("PACKAGE_ZIP_URL", server.url("/app.zip"))
            .env("PACKAGE_SHA256", "")
            .env("ZIPDEPLOY_TIMEOUT", "")
            .args(["--dest", &sandbox.dest_str()]),
    )
    .expect(0);
}

#[test]
fn headers_come_from_flags_or_one_per_line_from_the_variable() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();
    run_with(
        zipdeploy()
            .env("ZIPDEPLOY_HEADER", "X-One: 1\nAuthorization: Bearer t0k\n")
            .args(["--url", &url, "--dest", &dest]),
    )
    .expect(0);
    run_with(
        zipdeploy()
            .env("ZIPDEPLOY_HEADER", "X-One: ignored")
            .args(["--url", &url, "--dest", &dest, "--header", "X-Two: 2"])
            .args(["--header=X-Three: 3"]),
    )
    .expect(0);
    let requests = server.requests();
    assert_eq!(requests[0].header("x-one"), Some("1"));
    assert_eq!(requests[0].header("authorization"), Some("Bearer t0k"));
    assert_eq!(
        requests[1].header("x-one"),
        None,
        "--header beats the variable"
    );
    assert_eq!(requests[1].header("x-two"), Some("2"));
    assert_eq!(requests[1].header("x-three"), Some("3"));

    let bad = run([
        "--url",
        &url,
        "--dest",
        &dest,
        "--header",
        "no colon s3cret",
    ])
    .expect(2);
    assert!(bad.error_line().contains("--header"), "{}", bad.stderr);
    assert!(
        !bad.output_contains("s3cret"),
        "header values are not echoed"
    );
}

#[test]
fn unknown_zipdeploy_variable_is_a_usage_error_naming_it() {
    let sandbox = Sandbox::new();
    let out = run_with(zipdeploy().env("ZIPDEPLOY_TIMEOUTS", "5").args([
        "--url",
        "http://127.0.0.1:9/x.zip",
        "--dest",
        &sandbox.dest_str(),
    ]))
    .expect(2);
    assert!(
        out.error_line().contains("ZIPDEPLOY_TIMEOUTS"),
        "{}",
        out.stderr
    );

    let hinted = run_with(zipdeploy().env("ZIPDEPLOY_URL", "http://127.0.0.1:9/x.zip")).expect(2);
    assert!(
        hinted.error_line().contains("ZIPDEPLOY_URL") && hinted.stderr.contains("PACKAGE_ZIP_URL"),
        "{}",
        hinted.stderr
    );
    assert!(!sandbox.dest().exists());
}

// --- COMMAND ------------------------------------------------------------------

#[test]
fn execs_the_command_in_dest() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("7"));
    let child = zipdeploy()
        .args([
            "--url",
            &server.url("/app.zip"),
            "--dest",
            &sandbox.dest_str(),
        ])
        .args(["--quiet", "--", "sh", "-c", "echo $$; pwd; cat VERSION"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = Run::of(child.wait_with_output().unwrap()).expect(0);
    let dest = fs::canonicalize(sandbox.dest()).unwrap();
    assert_eq!(
        out.stdout,
        format!("{pid}\n{}\n7", dest.display()),
        "COMMAND replaced zipdeploy (same pid) and ran in DEST"
    );
}

#[test]
fn command_exit_status_is_passed_through() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let url = server.url("/app.zip");
    run([
        "--url",
        &url,
        "--dest",
        &sandbox.dest_str(),
        "--",
        "sh",
        "-c",
        "exit 42",
    ])
    .expect(42);
}

#[test]
fn without_a_url_runs_the_command_in_the_existing_dest() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.dest()).unwrap();
    fs::write(sandbox.dest().join("VERSION"), "mounted").unwrap();
    let out = run_with(
        zipdeploy()
            .env("PACKAGE_DIR", sandbox.dest())
            .args(["--", "cat", "VERSION"]),
    )
    .expect(0);
    assert_eq!(out.stdout, "mounted");
}

#[test]
fn missing_url_command_or_dest_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let no_command = run(["--dest", &sandbox.dest_str()]).expect(2);
    assert!(
        no_command.error_line().contains("COMMAND"),
        "{}",
        no_command.stderr
    );

    let no_dest = run(["--url", "http://127.0.0.1:9/x.zip"]).expect(2);
    assert!(
        no_dest.error_line().contains("--dest"),
        "{}",
        no_dest.stderr
    );

    let absent = run(["--dest", &sandbox.dest_str(), "--", "true"]).expect(2);
    assert!(
        absent.error_line().contains("not a directory"),
        "{}",
        absent.stderr
    );
}

#[test]
fn a_command_that_cannot_run_exits_like_a_shell() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.dest()).unwrap();
    fs::write(sandbox.dest().join("data.txt"), "not a program").unwrap();
    let dest = sandbox.dest_str();
    let missing = run(["--dest", &dest, "--", "no-such-command-zipdeploy"]).expect(127);
    assert!(missing
        .stderr
        .contains("zipdeploy: error: cannot run no-such-command-zipdeploy"));
    run(["--dest", &dest, "--", "./data.txt"]).expect(126);
}

// --- --init -------------------------------------------------------------------

fn package_with_init(script: &str) -> Vec<u8> {
    zip_of(&[
        Entry::File("VERSION", b"init"),
        Entry::File("init.sh", script.as_bytes()),
    ])
}

#[test]
fn init_script_runs_in_the_staged_tree_before_activation() {
    let sandbox = Sandbox::new();
    let pkg = package_with_init("cat VERSION > generated.txt\necho init says hi\n");
    let server = TestServer::serving(pkg);
    let out = run_with(zipdeploy().env("ZIPDEPLOY_INIT", "init.sh").args([
        "--url",
        &server.url("/app.zip"),
        "--dest",
        &sandbox.dest_str(),
        "--json",
    ]))
    .expect(0);
    assert_eq!(read(sandbox.dest().join("generated.txt")), b"init");
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "stdout holds only the report"
    );
    assert!(
        out.stderr.contains("init says hi"),
        "init's stdout goes to stderr"
    );
}

#[test]
fn failing_or_missing_init_script_leaves_dest_untouched() {
    let sandbox = Sandbox::new();
    let before = sandbox.install(&app_zip("1"));
    let server = TestServer::serving(package_with_init("echo partial > VERSION\nexit 3\n"));
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();

    let failed = run([
        "--url", &url, "--dest", &dest, "--init", "init.sh", "--", "true",
    ])
    .expect(8);
    assert!(
        failed.error_line().contains("init.sh exited with status 3"),
        "{}",
        failed.stderr
    );
    assert_eq!(snapshot(&sandbox.dest()), before);

    let missing = run(["--url", &url, "--dest", &dest, "--init", "setup/missing.sh"]).expect(8);
    assert!(
        missing.error_line().contains("setup/missing.sh"),
        "{}",
        missing.stderr
    );
    assert_eq!(snapshot(&sandbox.dest()), before);

    let outside = run(["--url", &url, "--dest", &dest, "--init", "../init.sh"]).expect(2);
    assert!(
        outside.error_line().contains("--init"),
        "{}",
        outside.stderr
    );
    assert_eq!(snapshot(&sandbox.dest()), before);
}

// --- exit classes -------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let sandbox = Sandbox::new();
    let dest = sandbox.dest_str();
    let url = "http://127.0.0.1:9/app.zip";
    for args in [
        vec!["--url", url, "--dest", &dest, "--bogus"],
        vec!["--url", url, "--dest", &dest, "--timeout", "soon"],
        vec!["--url", url, "--dest", &dest, "--retries"],
        vec!["--url", url, "--dest", &dest, "--json=yes"],
        vec!["--url", url, "--dest", &dest, "--sha256", "abc"],
        // --url is repeatable (mirrors); other options are not.
        vec!["--url", url, "--dest", &dest, "--dest", &dest],
        vec!["--url", "ftp://example.com/app.zip", "--dest", &dest],
        vec!["--url", url, "--dest", &dest, "stray"],
    ] {
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        out.error_line();
    }
    assert!(!sandbox.dest().exists());
}

#[test]
fn http_404_exits_3() {
    let sandbox = Sandbox::new();
    let before = sandbox.install(&app_zip("1"));
    let server = TestServer::start(|_, _| Reply::status(404));
    let out = run([
        "--url",
        &server.url("/gone.zip"),
        "--dest",
        &sandbox.dest_str(),
    ])
    .expect(3);
    assert!(out.error_line().contains("404"), "{}", out.stderr);
    assert_eq!(snapshot(&sandbox.dest()), before);
}

#[test]
fn retries_and_timeout_reach_the_library() {
    let sandbox = Sandbox::new();
    let server = TestServer::start(|_, _| Reply::status(503));
    let url = server.url("/app.zip");
    run([
        "--url",
        &url,
        "--dest",
        &sandbox.dest_str(),
        "--retries",
        "0",
    ])
    .expect(3);
    assert_eq!(server.requests().len(), 1, "--retries 0 makes one attempt");

    let pkg = app_zip("1");
    let stalling = TestServer::start(move |_, _| {
        Reply::ok(pkg.clone()).fault(Fault::StallAfter(10, std::time::Duration::from_secs(5)))
    });
    let url = stalling.url("/app.zip");
    let args = ["--url", &url, "--dest", &sandbox.dest_str(), "--retries=0"];
    let out = run_with(zipdeploy().args(args).args(["--timeout", "0.3"])).expect(3);
    assert!(out.error_line().contains("timed out"), "{}", out.stderr);
}

#[test]
fn digest_mismatch_exits_4() {
    let sandbox = Sandbox::new();
    let before = sandbox.install(&app_zip("1"));
    let server = TestServer::serving(app_zip("evil"));
    let wanted = sha(&app_zip("2"));
    let out = run([
        "--url",
        &server.url("/app.zip"),
        "--sha256",
        &format!("sha256:{wanted}"),
        "--dest",
        &sandbox.dest_str(),
    ])
    .expect(4);
    assert!(out.error_line().contains(&wanted), "{}", out.stderr);
    assert_eq!(snapshot(&sandbox.dest()), before);
}

#[test]
fn archive_escaping_with_dot_dot_exits_5() {
    let sandbox = Sandbox::new();
    let hostile = zip_of(&[
        Entry::File("ok.txt", b"fine"),
        Entry::File("../escaped.txt", b"pwned"),
    ]);
    let server = TestServer::serving(hostile);
    let out = run([
        "--url",
        &server.url("/app.zip"),
        "--dest",
        &sandbox.dest_str(),
    ])
    .expect(5);
    assert!(
        out.error_line().contains("../escaped.txt"),
        "{}",
        out.stderr
    );
    assert!(!sandbox.dest().exists());
    assert!(!sandbox
        .tmp
        .path()
        .parent()
        .unwrap()
        .join("escaped.txt")
        .exists());
}

#[test]
fn limits_exit_6() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();
    let size = run(["--url", &url, "--dest", &dest, "--max-size", "100"]).expect(6);
    assert!(
        size.error_line().contains("download size"),
        "{}",
        size.stderr
    );
    let entries = run(["--url", &url, "--dest", &dest, "--max-entries=3"]).expect(6);
    assert!(
        entries.error_line().contains("entry count"),
        "{}",
        entries.stderr
    );
    let total = run(["--url", &url, "--dest", &dest, "--max-total-size", "10"]).expect(6);
    assert!(
        total.error_line().contains("total uncompressed"),
        "{}",
        total.stderr
    );
    run([
        "--url",
        &url,
        "--dest",
        &dest,
        "--max-size",
        "1K",
        "--max-total-size=1k",
    ])
    .expect(0);
}

#[test]
fn dest_under_a_regular_file_exits_7() {
    let sandbox = Sandbox::new();
    let file = sandbox.tmp.path().join("file");
    fs::write(&file, "not a directory").unwrap();
    let server = TestServer::serving(app_zip("1"));
    let dest = file.join("app");
    let out = run_with(
        zipdeploy()
            .args(["--url", &server.url("/app.zip"), "--dest"])
            .arg(&dest),
    )
    .expect(7);
    out.error_line();
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
}

// --- --json, --help, --version --------------------------------------------------

#[test]
fn json_report_parses_and_names_the_deploy() {
    let sandbox = Sandbox::new();
    // A DEST name that needs escaping in JSON.
    let dest = sandbox.tmp.path().join("app \"quoted\" \\ tab\t é");
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let out = run_with(
        zipdeploy()
            .args(["--url", &server.url("/app.zip"), "--json", "--dest"])
            .arg(&dest),
    )
    .expect(0);
    assert_eq!(out.stderr, "", "--json replaces the summary line");
    assert_eq!(out.stdout.lines().count(), 1, "{:?}", out.stdout);
    let values = json_values(
        &out.stdout,
        &[
            "digest",
            "source",
            "dest",
            "noop",
            "bytes_downloaded",
            "package_size",
            "entries",
            "files",
            "dirs",
            "symlinks",
            "bytes_written",
            "timings_ms.fetch",
            "timings_ms.extract",
            "timings_ms.install",
            "timings_ms.total",
        ],
    );
    let dest_json = json_values(
        &format!("{{\"d\":{}}}", python_quote(dest.to_str().unwrap())),
        &["d"],
    );
    assert_eq!(values[0], quoted(&sha(&pkg)));
    assert_eq!(values[1], quoted(&server.url("/app.zip")));
    assert_eq!(values[2], dest_json[0], "dest survives escaping");
    assert_eq!(values[3], "false");
    assert_eq!(values[4], pkg.len().to_string());
    assert_eq!(values[5], pkg.len().to_string());
    assert_eq!(values[6], "5");
    assert_eq!(values[7], "4");
    assert!(
        values[11..].iter().all(|v| v.parse::<u64>().is_ok()),
        "{values:?}"
    );
}

/// A JSON string literal for `text`, built independently of the CLI's escaper.
fn python_quote(text: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys; print(json.dumps(sys.argv[1]))",
            text,
        ])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn json_failure_prints_an_error_object_and_the_stderr_line() {
    let sandbox = Sandbox::new();
    let server = TestServer::start(|_, _| Reply::status(404));
    let out = run([
        "--url",
        &server.url("/gone.zip"),
        "--dest",
        &sandbox.dest_str(),
        "--json",
    ])
    .expect(3);
    let values = json_values(&out.stdout, &["error.code", "error.class", "error.message"]);
    assert_eq!(values[0], "30");
    assert_eq!(values[1], quoted("network"));
    assert!(values[2].contains("404"), "{}", values[2]);
    out.error_line();

    let usage = run(["--json", "--dest", &sandbox.dest_str(), "--nope"]).expect(2);
    let values = json_values(&usage.stdout, &["error.class"]);
    assert_eq!(values[0], quoted("usage"));
}

#[test]
fn help_lists_options_variables_and_exit_codes() {
    let help = run(["--help"]).expect(0);
    for needle in [
        "--url URL",
        "PACKAGE_ZIP_URL",
        "PACKAGE_SHA256",
        "PACKAGE_DIR",
        "ZIPDEPLOY_INIT",
        "ZIPDEPLOY_HEADER",
        "ZIPDEPLOY_TIMEOUT",
        "ZIPDEPLOY_RETRIES",
        "ZIPDEPLOY_MAX_SIZE",
        "ZIPDEPLOY_MAX_TOTAL_SIZE",
        "ZIPDEPLOY_MAX_ENTRIES",
        "ZIPDEPLOY_KEEP",
        "ZIPDEPLOY_SYNC",
        "ZIPDEPLOY_PROGRESS",
        "ZIPDEPLOY_QUIET",
        "ZIPDEPLOY_JSON",
        "Exit status",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle}");
    }
    for code in [0, 2, 3, 4, 5, 6, 7, 8, 9, 126, 127] {
        assert!(
            help.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} "))),
            "--help lacks exit code {code}"
        );
    }
    assert_eq!(run(["-h"]).expect(0).stdout, help.stdout);
    let version = run(["--version"]).expect(0);
    assert_eq!(
        version.stdout.trim(),
        format!("zipdeploy {}", env!("CARGO_PKG_VERSION"))
    );
}

// --- credentials --------------------------------------------------------------

#[test]
fn a_password_in_the_url_is_never_printed() {
    const PASSWORD: &str = "s3cr3t-pw";
    let sandbox = Sandbox::new();
    let pkg = app_zip("1");
    let server = TestServer::start(move |req, _| match req.path.as_str() {
        "/app.zip" => Reply::ok(pkg.clone()),
        "/private.zip" => Reply::status(401),
        _ => Reply::status(404),
    });
    let with_password = |path: &str| format!("http://user:{PASSWORD}@{}{path}", server.addr());
    let dest = sandbox.dest_str();
    let runs = [
        run(["--url", &with_password("/app.zip"), "--dest", &dest]).expect(0),
        run([
            "--url",
            &with_password("/app.zip"),
            "--dest",
            &dest,
            "--json",
        ])
        .expect(0),
        run(["--url", &with_password("/private.zip"), "--dest", &dest]).expect(3),
        run([
            "--url",
            &with_password("/private.zip"),
            "--dest",
            &dest,
            "--json",
        ])
        .expect(3),
        run([
            "--url",
            &with_password("/gone.zip"),
            "--dest",
            &dest,
            "--json",
        ])
        .expect(3),
        run([
            "--url",
            &with_password("/gone.zip"),
            "--dest",
            &dest,
            "--progress",
        ])
        .expect(3),
        run_with(
            zipdeploy()
                .env("PACKAGE_ZIP_URL", with_password("/app.zip"))
                .env("ZIPDEPLOY_BOGUS", "1")
                .args(["--dest", &dest]),
        )
        .expect(2),
    ];
    for out in &runs {
        assert!(
            !out.output_contains(PASSWORD),
            "password leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    assert!(runs[2].stderr.contains("401"), "{}", runs[2].stderr);
    let source = &json_values(&runs[1].stdout, &["source"])[0];
    assert!(source.contains("***@"), "{source}");
}

#[test]
fn json_and_summary_say_when_the_server_answered_not_modified() {
    let sandbox = Sandbox::new();
    let pkg = app_zip("1");
    let server = TestServer::start(move |req, _| {
        if req.header("if-none-match") == Some("\"e1\"") {
            let mut reply = Reply::ok(Vec::new()).header("ETag", "\"e1\"");
            reply.status = 304;
            return reply;
        }
        Reply::ok(pkg.clone()).header("ETag", "\"e1\"")
    });
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();
    let first = run(["--url", &url, "--dest", &dest, "--json"]).expect(0);
    assert_eq!(
        json_values(&first.stdout, &["noop", "not_modified"]),
        ["false", "false"]
    );
    let again = run(["--url", &url, "--dest", &dest, "--json"]).expect(0);
    assert_eq!(
        json_values(&again.stdout, &["noop", "not_modified", "bytes_downloaded"]),
        ["true", "true", "0"]
    );
    let summary = run(["--url", &url, "--dest", &dest]).expect(0);
    assert!(
        summary.stderr.contains("not modified on the server"),
        "{:?}",
        summary.stderr
    );
    assert_eq!(server.requests().len(), 3);
}
