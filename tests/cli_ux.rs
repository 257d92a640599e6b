//! How the example CLI talks to its user: durations with units, the
//! connect and stall timeouts, `-V`, `-v`, `-q`, suggestions for misspelt
//! flags, plain error words, and progress that suits a log. Servers on
//! 127.0.0.1 only.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cli::{self, run};
use common::*;

/// The CLI with a clean environment, stderr a pipe (not a terminal).
fn zipdeploy() -> Command {
    cli::command()
}

fn dest_in(tmp: &tempfile::TempDir) -> String {
    tmp.path().join("app").to_str().unwrap().to_string()
}

#[test]
fn durations_take_units_and_bare_numbers_stay_seconds() {
    let server = TestServer::serving(app_zip("1"));
    let tmp = tempfile::tempdir().unwrap();
    let dest = dest_in(&tmp);
    run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest])
        .args(["--timeout", "1m30s", "--speed-time", "500ms"])
        .args(["--connect-timeout=5", "--stall-timeout", "1.5s"])
        .env("ZIPDEPLOY_RETRIES", "0")
        .env("ZIPDEPLOY_CONNECT_TIMEOUT", "1h"))
    .expect(0);
    assert_eq!(read(tmp.path().join("app/VERSION")), b"1");
    run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest])
        .env("ZIPDEPLOY_STALL_TIMEOUT", "2m")
        .env("ZIPDEPLOY_SPEED_TIME", "30"))
    .expect(0);
}

#[test]
fn durations_with_wrong_units_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = dest_in(&tmp);
    let flag = run(zipdeploy()
        .args(["--url", "http://127.0.0.1:9/a.zip", "--dest", &dest])
        .args(["--timeout", "5x"]))
    .expect(2);
    let line = flag.error_line();
    assert!(line.contains("invalid --timeout: \"5x\""), "{line}");
    assert!(line.contains("500ms, 30s, 5m, 1h"), "{line}");
    for bad in ["3d", "0s", "-1", "1 m", "ms"] {
        let var = run(zipdeploy()
            .args(["--url", "http://127.0.0.1:9/a.zip", "--dest", &dest])
            .env("ZIPDEPLOY_STALL_TIMEOUT", bad))
        .expect(2);
        let line = var.error_line();
        assert!(line.contains("invalid ZIPDEPLOY_STALL_TIMEOUT"), "{line}");
        assert!(line.contains("expected seconds, or with units"), "{line}");
    }
    assert!(!tmp.path().join("app").exists());
}

#[test]
fn a_limit_of_zero_is_a_usage_error_before_any_download() {
    // As in the C ABI: 0 is no limit one could mean, so it is refused as a
    // usage error (exit 2), not found out after the download (exit 6).
    let server = TestServer::serving(app_zip("1"));
    let tmp = tempfile::tempdir().unwrap();
    let dest = dest_in(&tmp);
    for (flag, var) in [
        ("--max-size", "ZIPDEPLOY_MAX_SIZE"),
        ("--max-total-size", "ZIPDEPLOY_MAX_TOTAL_SIZE"),
        ("--max-entries", "ZIPDEPLOY_MAX_ENTRIES"),
        ("--cache-max-size", "ZIPDEPLOY_CACHE_MAX_SIZE"),
    ] {
        let cache = tmp.path().join("cache");
        let cache = cache.to_str().unwrap();
        let given = run(zipdeploy()
            .args(["--url", &server.url("/app.zip"), "--dest", &dest])
            .args(["--cache", cache, flag, "0"]))
        .expect(2);
        let line = given.error_line();
        assert!(line.contains(&format!("invalid {flag}: \"0\"")), "{line}");
        let from_env = run(zipdeploy()
            .args(["--url", &server.url("/app.zip"), "--dest", &dest])
            .args(["--cache", cache])
            .env(var, "0"))
        .expect(2);
        let line = from_env.error_line();
        assert!(line.contains(&format!("invalid {var}")), "{line}");
    }
    assert!(server.requests().is_empty(), "nothing downloaded");
    assert!(!tmp.path().join("app").exists());
}

#[test]
fn the_stall_timeout_reaches_the_library() {
    // Headers and 100 bytes, then silence for 30 s.
    let server = TestServer::start(|_, _| {
        Reply::ok(app_zip("1")).fault(Fault::StallAfter(100, Duration::from_secs(30)))
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest_in(&tmp)])
        .args(["--stall-timeout", "300ms", "--retries", "0"]))
    .expect(3);
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
    let line = out.error_line();
    assert!(line.contains("timed out"), "{line}");
    assert!(line.contains("stall timeout (300ms)"), "{line}");
}

#[test]
fn the_connect_timeout_reaches_the_library() {
    // Accepts TCP connections but never answers the TLS handshake, which
    // belongs to connecting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args([
            "--url",
            &format!("https://{addr}/app.zip"),
            "--dest",
            &dest_in(&tmp),
        ])
        .env("ZIPDEPLOY_CONNECT_TIMEOUT", "300ms")
        .env("ZIPDEPLOY_RETRIES", "0"))
    .expect(3);
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
    let line = out.error_line();
    assert!(line.contains("connect timeout"), "{line}");
}

#[test]
fn a_deadline_error_names_no_library_internals() {
    let server = TestServer::start(|_, _| {
        Reply::ok(app_zip("1")).fault(Fault::StallAfter(100, Duration::from_secs(30)))
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest_in(&tmp)])
        .args(["--timeout", "800ms"]))
    .expect(3);
    let line = out.error_line();
    assert!(!line.contains("global"), "{line}");
    assert!(line.contains("overall deadline"), "{line}");
}

#[test]
fn dash_capital_v_prints_the_version() {
    let version = format!("zipdeploy {}\n", env!("CARGO_PKG_VERSION"));
    for flag in ["-V", "--version"] {
        let out = run(zipdeploy().arg(flag)).expect(0);
        assert_eq!(out.stdout, version);
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn verbose_prints_a_line_per_retry_and_redirect() {
    let pkg = app_zip("1");
    let package_requests = Arc::new(AtomicUsize::new(0));
    let server = {
        let package_requests = package_requests.clone();
        TestServer::start(move |req, _| match req.path.as_str() {
            "/latest" => Reply::status(302).header("Location", "/app.zip"),
            _ if package_requests.fetch_add(1, Ordering::SeqCst) < 2 => Reply::status(503),
            _ => Reply::ok(pkg.clone()),
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy().args([
        "--url",
        &server.url("/latest"),
        "--dest",
        &dest_in(&tmp),
        "-v",
    ]))
    .expect(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let redirects = lines
        .iter()
        .filter(|l| l.starts_with("zipdeploy: redirect 302 from ") && l.ends_with("/app.zip"))
        .count();
    assert_eq!(redirects, 3, "one per attempt: {lines:#?}");
    let retries: Vec<&&str> = lines.iter().filter(|l| l.contains("; retry ")).collect();
    assert_eq!(retries.len(), 2, "{lines:#?}");
    assert!(
        retries[0].contains("503") && retries[0].contains("retry 1/3 in "),
        "{retries:?}"
    );
    assert!(retries[1].contains("retry 2/3 in "), "{retries:?}");
    assert!(
        lines.last().unwrap().starts_with("zipdeploy: installed "),
        "{lines:#?}"
    );
    // Without -v, the same run says only what it installed.
    let tmp = tempfile::tempdir().unwrap();
    package_requests.store(0, Ordering::SeqCst);
    let quiet = run(zipdeploy().args(["--url", &server.url("/latest"), "--dest", &dest_in(&tmp)]))
        .expect(0);
    assert_eq!(quiet.stderr.lines().count(), 1, "{}", quiet.stderr);
}

#[test]
fn quiet_prints_nothing_on_success() {
    let server = TestServer::serving(app_zip("1"));
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest_in(&tmp)])
        .args(["-q", "--progress"]))
    .expect(0);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    assert_eq!(read(tmp.path().join("app/VERSION")), b"1");
    // Errors still show.
    let failed = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest_in(&tmp)])
        .args(["-q", "--sha256", &"0".repeat(64)]))
    .expect(4);
    failed.error_line();
}

#[test]
fn quiet_and_verbose_exclude_each_other() {
    let out = run(zipdeploy().args(["-q", "-v", "--dest", "/nonexistent", "--", "true"])).expect(2);
    assert!(
        out.error_line().contains("--quiet and --verbose"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_misspelt_flag_gets_a_suggestion() {
    let out = run(zipdeploy().args(["--dset", "/tmp/x", "--", "true"])).expect(2);
    assert!(
        out.error_line()
            .contains("unknown option --dset (did you mean --dest?)"),
        "{}",
        out.stderr
    );
    let out = run(zipdeploy().args(["--frobnicate"])).expect(2);
    assert!(!out.error_line().contains("did you mean"), "{}", out.stderr);
    let out = run(zipdeploy()
        .env("ZIPDEPLOY_TIMOUT", "5")
        .args(["--dest", "/tmp/x", "--", "true"]))
    .expect(2);
    assert!(
        out.error_line()
            .contains("(did you mean ZIPDEPLOY_TIMEOUT?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn progress_in_a_log_is_plain_lines_apart_from_the_init_output() {
    let pkg = zip_of(&[
        Entry::File("VERSION", b"1"),
        Entry::File("init.sh", b"echo hello from init\n"),
    ]);
    let server = TestServer::serving(pkg);
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--dest", &dest_in(&tmp)])
        .args(["--progress", "--init", "init.sh"]))
    .expect(0);
    assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("zipdeploy: fetch ")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("zipdeploy: extract ")),
        "{lines:#?}"
    );
    assert!(lines.contains(&"hello from init"), "{lines:#?}");
    assert!(
        lines.last().unwrap().starts_with("zipdeploy: installed "),
        "{lines:#?}"
    );
    // A small package: a line per stage and tenth at most, no flood.
    assert!(lines.len() < 40, "{lines:#?}");
}

#[test]
fn a_refused_connection_names_no_library_internals() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/app.zip");
    let out = run(zipdeploy().args(["--url", &url, "--dest", &dest_in(&tmp), "--retries", "0"]))
        .expect(3);
    let line = out.error_line();
    assert!(line.contains("Connection refused"), "{line}");
    assert!(!line.contains("io: "), "{line}");
}

#[test]
fn verbose_names_a_mirror_skipped() {
    let server = TestServer::start(|req, _| match req.path.as_str() {
        "/gone.zip" => Reply::status(404),
        _ => Reply::ok(app_zip("1")),
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = run(zipdeploy()
        .args([
            "--url",
            &server.url("/gone.zip"),
            "--url",
            &server.url("/app.zip"),
        ])
        .args(["--dest", &dest_in(&tmp), "--verbose"]))
    .expect(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with("zipdeploy: mirror skipped: ") && lines[0].contains("404"),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("zipdeploy: installed "), "{lines:#?}");
}
