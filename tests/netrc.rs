//! Credentials from a netrc file: sent to the matching host only (redirect
//! hops decided one by one), never read from a file others may read, beaten
//! by credentials in the URL, ignored for `s3://`; through the library and
//! the CLI (`--netrc-file`, `--no-netrc`, the default `$HOME/.netrc`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use zipdeploy::s3::{Credentials, S3Options};
use zipdeploy::{Deploy, Error, FetchOptions, NetrcFile, Sha256Digest};

/// The `Authorization` value of Basic credentials `user:password`.
fn basic(credentials: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = credentials.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
            out.push(c as char);
        }
    }
    format!("Basic {out}")
}

/// A server that serves `body` only to requests with the Basic credentials
/// `user:password`, and 401 to others.
fn server_requiring(credentials: &'static str, body: Vec<u8>) -> TestServer {
    TestServer::start(move |req, _| {
        if req.header("authorization") == Some(basic(credentials).as_str()) {
            Reply::ok(body.clone())
        } else {
            Reply::status(401).header("WWW-Authenticate", "Basic realm=\"pkg\"")
        }
    })
}

/// Writes `text` as a netrc file with `mode` in `dir`.
fn netrc_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("netrc");
    std::fs::write(&path, text).unwrap();
    chmod(&path, mode);
    path
}

fn options() -> FetchOptions {
    FetchOptions {
        retries: 0,
        ..FetchOptions::default()
    }
}

fn deploy(url: &str, dest: &Path, netrc: NetrcFile) -> zipdeploy::Result<zipdeploy::Report> {
    Deploy::new(url)?
        .fetch_options(options())
        .netrc(netrc)
        .dest(dest)
        .run()
}

#[test]
fn netrc_credentials_reach_the_matching_host() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server_requiring("alice:s3cret", app_zip("v1"));
    let url = server.url("/app.zip");
    let netrc = netrc_file(
        tmp.path(),
        "machine other.example login mallory password nope\n\
         machine 127.0.0.1\n  login alice\n  password s3cret\n",
        0o600,
    );

    let err = deploy(&url, &tmp.path().join("none"), NetrcFile::Disabled).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 401, .. }),
        "{err}"
    );

    let dest = tmp.path().join("app");
    deploy(&url, &dest, NetrcFile::Required(netrc)).unwrap();
    assert_eq!(read(dest.join("VERSION")), b"v1");
}

#[test]
fn netrc_credentials_never_follow_a_redirect_to_another_host() {
    let tmp = tempfile::tempdir().unwrap();
    let target = TestServer::serving(app_zip("v1"));
    let target_url = target.url("/app.zip");
    let redirector =
        TestServer::start(move |_, _| Reply::status(302).header("Location", &target_url));
    // The same server under another host name: `localhost` redirects to
    // `127.0.0.1`.
    let url = format!("http://localhost:{}/app.zip", redirector.addr().port());

    let only_first = netrc_file(
        tmp.path(),
        "machine localhost login alice password pa\n",
        0o600,
    );
    deploy(&url, &tmp.path().join("a"), NetrcFile::Required(only_first)).unwrap();
    assert_eq!(
        redirector.requests()[0].header("authorization"),
        Some(basic("alice:pa").as_str())
    );
    assert_eq!(target.requests().len(), 1);
    assert_eq!(target.requests()[0].header("authorization"), None);

    // Each hop gets the credentials of its own host, and only those.
    let both = netrc_file(
        tmp.path(),
        "machine localhost login alice password pa\nmachine 127.0.0.1 login bob password pb\n",
        0o600,
    );
    deploy(&url, &tmp.path().join("b"), NetrcFile::Required(both)).unwrap();
    assert_eq!(
        redirector.requests()[1].header("authorization"),
        Some(basic("alice:pa").as_str())
    );
    assert_eq!(
        target.requests()[1].header("authorization"),
        Some(basic("bob:pb").as_str())
    );
}

#[test]
fn a_netrc_file_others_can_read_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server_requiring("alice:s3cret", app_zip("v1"));
    let netrc = netrc_file(
        tmp.path(),
        "machine 127.0.0.1 login alice password s3cret\n",
        0o644,
    );
    let dest = tmp.path().join("app");
    let err = deploy(
        &server.url("/app.zip"),
        &dest,
        NetrcFile::Required(netrc.clone()),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{message}");
    assert!(message.contains(&netrc.display().to_string()), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
    assert!(message.contains("0644"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(server.requests().is_empty(), "nothing sent");
    assert!(!dest.exists());

    // Group-writable is refused too; a missing default file is fine.
    chmod(&netrc, 0o620);
    let err = deploy(&server.url("/app.zip"), &dest, NetrcFile::Required(netrc)).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    let missing = NetrcFile::IfPresent(tmp.path().join("no-such-netrc"));
    let err = deploy(&server.url("/app.zip"), &dest, missing).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 401, .. }),
        "{err}"
    );
}

#[test]
fn url_credentials_win_over_netrc() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(app_zip("v1"));
    let port = server.addr().port();
    let netrc = netrc_file(
        tmp.path(),
        "machine 127.0.0.1 login bob password pb\nmachine 127.0.0.1 login alice password pa\n",
        0o600,
    );
    let with_password = format!("http://carol:pc@127.0.0.1:{port}/app.zip");
    deploy(
        &with_password,
        &tmp.path().join("a"),
        NetrcFile::Required(netrc.clone()),
    )
    .unwrap();
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(basic("carol:pc").as_str())
    );

    // A user without a password: the netrc entry for that login gives it.
    let user_only = format!("http://alice@127.0.0.1:{port}/app.zip");
    deploy(
        &user_only,
        &tmp.path().join("b"),
        NetrcFile::Required(netrc.clone()),
    )
    .unwrap();
    assert_eq!(
        server.requests()[1].header("authorization"),
        Some(basic("alice:pa").as_str())
    );

    // An explicit Authorization header wins too.
    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .fetch_options(options())
        .netrc(NetrcFile::Required(netrc))
        .header("Authorization", "Bearer t0ken")
        .dest(tmp.path().join("c"))
        .run()
        .unwrap();
    assert_eq!(
        server.requests()[2].header("authorization"),
        Some("Bearer t0ken")
    );
}

#[test]
fn s3_locations_ignore_netrc() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(app_zip("v1"));
    // Were it read, this file would be refused (mode 0644).
    let netrc = netrc_file(tmp.path(), "default login alice password pa\n", 0o644);
    let options = FetchOptions {
        retries: 0,
        s3: S3Options {
            endpoint: Some(server.url("/").parse().unwrap()),
            region: Some("us-east-1".into()),
            credentials: Some(Credentials::new("AKIDEXAMPLE", "secret", None)),
            ..S3Options::default()
        },
        netrc: NetrcFile::Required(netrc),
        ..FetchOptions::default()
    };
    let dest = tmp.path().join("app");
    Deploy::new("s3://bucket/app.zip")
        .unwrap()
        .fetch_options(options)
        .dest(&dest)
        .run()
        .unwrap();
    let auth = server.requests()[0]
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
}

#[test]
fn debug_of_the_options_shows_no_password() {
    let tmp = tempfile::tempdir().unwrap();
    let netrc = netrc_file(tmp.path(), "default login alice password s3cret\n", 0o600);
    let options = FetchOptions {
        netrc: NetrcFile::Required(netrc.clone()),
        ..FetchOptions::default()
    };
    let shown = format!("{options:?}");
    assert!(shown.contains(&netrc.display().to_string()), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

// The CLI.

/// The CLI with only PATH and `HOME=home` in its environment.
fn cli(home: &Path) -> Command {
    let mut cmd = common::cli::command();
    cmd.env("HOME", home);
    cmd
}

/// Runs `cmd`: its exit code and stderr.
fn run(cmd: &mut Command) -> (i32, String) {
    let run = common::cli::run(cmd);
    (run.code, run.stderr)
}

#[test]
fn cli_reads_netrc_file_and_its_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = app_zip("v1");
    let sha = Sha256Digest::of(&pkg).to_hex();
    let server = server_requiring("alice:s3cret", pkg);
    let url = server.url("/app.zip");
    let netrc = netrc_file(
        tmp.path(),
        "machine 127.0.0.1 login alice password s3cret\n",
        0o600,
    );
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let dest = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();

    let (code, stderr) =
        run(cli(&home).args(["--url", &url, "--sha256", &sha, "--dest", &dest("a")]));
    assert_ne!(code, 0, "no netrc, no credentials: {stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--sha256", &sha, "--dest", &dest("b")])
        .arg("--netrc-file")
        .arg(&netrc));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read(tmp.path().join("b/VERSION")), b"v1");

    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--sha256", &sha, "--dest", &dest("c")])
        .env("ZIPDEPLOY_NETRC_FILE", &netrc));
    assert_eq!(code, 0, "{stderr}");

    chmod(&netrc, 0o644);
    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--sha256", &sha, "--dest", &dest("d")])
        .arg("--netrc-file")
        .arg(&netrc));
    assert_ne!(code, 0);
    assert!(stderr.contains(&netrc.display().to_string()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let missing = tmp.path().join("missing-netrc");
    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--dest", &dest("e")])
        .arg("--netrc-file")
        .arg(&missing));
    assert_ne!(code, 0);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--dest", &dest("f"), "--no-netrc"])
        .arg("--netrc-file")
        .arg(&netrc));
    assert_eq!(code, 2, "a usage error: {stderr}");
}

#[test]
fn cli_reads_home_netrc_by_default_and_netrc_names_another() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = app_zip("v1");
    let server = server_requiring("alice:s3cret", pkg);
    let url = server.url("/app.zip");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    netrc_file(&home, "", 0o600);
    std::fs::rename(home.join("netrc"), home.join(".netrc")).unwrap();
    std::fs::write(
        home.join(".netrc"),
        "machine 127.0.0.1 login alice password s3cret\n",
    )
    .unwrap();
    let dest = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();

    let (code, stderr) = run(cli(&home).args(["--url", &url, "--dest", &dest("a")]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read(tmp.path().join("a/VERSION")), b"v1");

    let (code, stderr) = run(cli(&home).args(["--url", &url, "--dest", &dest("b"), "--no-netrc"]));
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // NETRC names the file instead of ~/.netrc.
    let other = netrc_file(
        tmp.path(),
        "machine 127.0.0.1 login alice password wrong\n",
        0o600,
    );
    let (code, stderr) = run(cli(&home)
        .args(["--url", &url, "--dest", &dest("c")])
        .env("NETRC", &other));
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // A ~/.netrc others can read is refused, naming it.
    chmod(&home.join(".netrc"), 0o604);
    let (code, stderr) = run(cli(&home).args(["--url", &url, "--dest", &dest("d")]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&home.join(".netrc").display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");
}
