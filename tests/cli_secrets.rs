//! The example CLI and the deploy's secrets, run as a subprocess against a
//! real HTTP server on 127.0.0.1: `--init` and COMMAND do not inherit
//! zipdeploy's own variables (unless `--pass-env`), and every value can be
//! read from a file (`--url-file`, `--header-file`, `VAR_FILE`) as Docker
//! and Kubernetes mount secrets.

mod common;
use common::sha;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{self, run};
use common::*;

/// The CLI with a clean environment: PATH, HOME and one variable of the
/// app's own, which must reach COMMAND untouched.
fn zipdeploy() -> Command {
    let mut cmd = cli::command();
    cmd.env("HOME", "/home/app").env("APP_MODE", "production");
    cmd
}

/// A temp dir with DEST at `app` and room for secret files.
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

    /// Writes a file beside DEST (a mounted secret) and returns its path.
    fn secret(&self, name: &str, content: &str) -> String {
        let path = self.tmp.path().join(name);
        fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }
}

/// An environment as `env -0` prints it.
fn parse_env(raw: &[u8]) -> BTreeMap<String, String> {
    raw.split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (key, value) = entry.split_once('=').expect("NAME=value");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// A package whose init script records its environment in `init.env`.
fn package_recording_init_env() -> Vec<u8> {
    zip_of(&[
        Entry::File("VERSION", b"1"),
        Entry::File("init.sh", b"env -0 > init.env\n"),
    ])
}

/// The variables no child of zipdeploy may see by default.
fn deploy_variables(env: &BTreeMap<String, String>) -> Vec<&str> {
    env.keys()
        .map(String::as_str)
        .filter(|key| {
            key.starts_with("ZIPDEPLOY_")
                || key.starts_with("PACKAGE_ZIP_URL")
                || key.starts_with("PACKAGE_SHA256")
                || key.ends_with("_FILE")
        })
        .collect()
}

const PASSWORD: &str = "s3cr3t-file-pw";
/// `Basic base64("deployer:s3cr3t-file-pw")`.
const BASIC_AUTH: &str = "Basic ZGVwbG95ZXI6czNjcjN0LWZpbGUtcHc=";

// --- the environment of --init and COMMAND ----------------------------------------

#[test]
fn command_and_init_see_none_of_the_deploy_variables() {
    let sandbox = Sandbox::new();
    let pkg = package_recording_init_env();
    let server = TestServer::serving(pkg.clone());
    let url = format!("http://deployer:{PASSWORD}@{}/app.zip", server.addr());
    let out = run(zipdeploy()
        .env("PACKAGE_ZIP_URL", &url)
        .env("PACKAGE_SHA256", sha(&pkg))
        .env("PACKAGE_DIR", sandbox.dest())
        .env("ZIPDEPLOY_HEADER", "Authorization: Bearer t0ken-in-header")
        .env("ZIPDEPLOY_INIT", "init.sh")
        .env("ZIPDEPLOY_QUIET", "1")
        .args(["--", "env", "-0"]))
    .expect(0);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer t0ken-in-header"),
        "the header still reaches the server"
    );
    let dest = sandbox.dest().canonicalize().unwrap();
    let init_env = parse_env(&read(sandbox.dest().join("init.env")));
    let command_env = parse_env(out.stdout.as_bytes());
    for (who, env) in [("--init", &init_env), ("COMMAND", &command_env)] {
        assert_eq!(deploy_variables(env), Vec::<&str>::new(), "{who} sees them");
        let all = format!("{env:?}");
        assert!(!all.contains(PASSWORD), "{who} sees the URL password");
        assert!(!all.contains("t0ken-in-header"), "{who} sees the header");
        assert_eq!(env["APP_MODE"], "production", "{who} keeps the app's own");
        assert_eq!(env["HOME"], "/home/app", "{who} keeps HOME");
        assert!(env.contains_key("PATH"), "{who} keeps PATH");
        assert_eq!(
            Path::new(&env["PACKAGE_DIR"]),
            dest,
            "{who} is told where the app lives"
        );
    }
}

#[test]
fn file_forms_are_removed_too_and_package_dir_is_absolute() {
    let sandbox = Sandbox::new();
    let pkg = package_recording_init_env();
    let server = TestServer::serving(pkg.clone());
    let url_file = sandbox.secret("url", &server.url("/app.zip"));
    let sha_file = sandbox.secret("sha", &format!("{}\n", sha(&pkg)));
    let header_file = sandbox.secret("headers", "X-Tenant: blue\n");
    let retries_file = sandbox.secret("retries", "1\n");
    let out = run(zipdeploy()
        .current_dir(sandbox.tmp.path())
        .env("PACKAGE_ZIP_URL_FILE", &url_file)
        .env("PACKAGE_SHA256_FILE", &sha_file)
        .env("PACKAGE_DIR", "app")
        .env("ZIPDEPLOY_HEADER_FILE", &header_file)
        .env("ZIPDEPLOY_RETRIES_FILE", &retries_file)
        .args(["--init", "init.sh", "--quiet", "--", "env", "-0"]))
    .expect(0);
    let dest = sandbox.dest().canonicalize().unwrap();
    let init_env = parse_env(&read(sandbox.dest().join("init.env")));
    let command_env = parse_env(out.stdout.as_bytes());
    for (who, env) in [("--init", &init_env), ("COMMAND", &command_env)] {
        assert_eq!(deploy_variables(env), Vec::<&str>::new(), "{who} sees them");
        assert_eq!(env["APP_MODE"], "production");
        assert_eq!(
            Path::new(&env["PACKAGE_DIR"]),
            dest,
            "{who}: PACKAGE_DIR=app becomes absolute"
        );
    }

    // Without a package (a mounted tree) COMMAND is cleaned the same way.
    let mounted = run(zipdeploy()
        .env("PACKAGE_DIR", sandbox.dest())
        .env("ZIPDEPLOY_HEADER", "Authorization: Bearer t0ken")
        .env("ZIPDEPLOY_QUIET", "1")
        .args(["--", "env", "-0"]))
    .expect(0);
    let env = parse_env(mounted.stdout.as_bytes());
    assert_eq!(deploy_variables(&env), Vec::<&str>::new());
    assert_eq!(env["APP_MODE"], "production");
}

#[test]
fn pass_env_keeps_the_deploy_variables() {
    let pkg = package_recording_init_env();
    let server = TestServer::serving(pkg.clone());
    let url = server.url("/app.zip");
    let header_file_content = "X-Tenant: blue\n";
    for how in ["--pass-env", "ZIPDEPLOY_PASS_ENV=1"] {
        let sandbox = Sandbox::new();
        let header_file = sandbox.secret("headers", header_file_content);
        let mut cmd = zipdeploy();
        cmd.env("PACKAGE_ZIP_URL", &url)
            .env("PACKAGE_SHA256", sha(&pkg))
            .env("PACKAGE_DIR", sandbox.dest())
            .env("ZIPDEPLOY_HEADER_FILE", &header_file)
            .env("ZIPDEPLOY_INIT", "init.sh")
            .env("ZIPDEPLOY_QUIET", "1");
        match how.split_once('=') {
            Some((var, value)) => cmd.env(var, value),
            None => cmd.arg(how),
        };
        let out = run(cmd.args(["--", "env", "-0"])).expect(0);
        let init_env = parse_env(&read(sandbox.dest().join("init.env")));
        let command_env = parse_env(out.stdout.as_bytes());
        for (who, env) in [("--init", &init_env), ("COMMAND", &command_env)] {
            assert_eq!(env.get("PACKAGE_ZIP_URL"), Some(&url), "{how}: {who}");
            assert_eq!(env.get("PACKAGE_SHA256"), Some(&sha(&pkg)), "{how}: {who}");
            assert_eq!(
                env.get("ZIPDEPLOY_HEADER_FILE"),
                Some(&header_file),
                "{how}: {who}"
            );
            assert_eq!(
                env.get("ZIPDEPLOY_INIT").map(String::as_str),
                Some("init.sh")
            );
            assert_eq!(env["APP_MODE"], "production");
        }
    }
}

// --- values read from files ---------------------------------------------------------

/// Serves `app.zip` only with the right basic auth; `/gone.zip` is a 404.
fn server_wanting_basic_auth(pkg: Vec<u8>) -> TestServer {
    TestServer::start(move |req, _| match req.path.as_str() {
        "/app.zip" if req.header("authorization") == Some(BASIC_AUTH) => Reply::ok(pkg.clone()),
        "/app.zip" => Reply::status(401),
        _ => Reply::status(404),
    })
}

#[test]
fn a_url_with_a_password_is_read_from_a_file_and_never_printed() {
    let pkg = app_zip("from-file");
    let server = server_wanting_basic_auth(pkg.clone());
    let with_password = |path: &str| format!("http://deployer:{PASSWORD}@{}{path}", server.addr());
    let mut outputs = Vec::new();

    // PACKAGE_ZIP_URL_FILE, with a comment and a trailing newline.
    let sandbox = Sandbox::new();
    let url_file = sandbox.secret(
        "url",
        &format!("# the package\n{}\n", with_password("/app.zip")),
    );
    outputs.push(
        run(zipdeploy()
            .env("PACKAGE_ZIP_URL_FILE", &url_file)
            .env("PACKAGE_SHA256", sha(&pkg))
            .args(["--dest", &sandbox.dest_str()]))
        .expect(0),
    );
    assert_eq!(read(sandbox.dest().join("VERSION")), b"from-file");

    // --url-file holding the URL and a mirror, the way PACKAGE_ZIP_URL can.
    let sandbox = Sandbox::new();
    let urls = format!(
        "{}\n{}\n",
        with_password("/gone.zip"),
        with_password("/app.zip")
    );
    let url_file = sandbox.secret("urls", &urls);
    let json = run(zipdeploy().args([
        "--url-file",
        &url_file,
        "--dest",
        &sandbox.dest_str(),
        "--json",
    ]))
    .expect(0);
    assert_eq!(read(sandbox.dest().join("VERSION")), b"from-file");
    assert!(
        json.stdout.contains("\"mirrors_skipped\":[\""),
        "{}",
        json.stdout
    );
    assert!(json.stdout.contains("***@"), "{}", json.stdout);
    outputs.push(json);

    // A failure names the cause, not the password.
    let wrong = sandbox.secret("wrong", &with_password("/private/app.zip"));
    outputs.push(
        run(zipdeploy().args(["--url-file", &wrong, "--dest", &sandbox.dest_str()])).expect(3),
    );
    assert!(outputs[2].stderr.contains("404"), "{}", outputs[2].stderr);

    for out in &outputs {
        assert!(
            !out.output_contains(PASSWORD),
            "password leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    let auths: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(
        auths.iter().all(|a| a.as_deref() == Some(BASIC_AUTH)),
        "every request carried the file's credentials: {auths:?}"
    );
}

#[test]
fn headers_are_read_from_a_file_and_sent() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let url = server.url("/app.zip");
    let dest = sandbox.dest_str();
    let headers = sandbox.secret(
        "headers",
        "# tokens for the package store\r\nAuthorization: Bearer t0k-from-file\r\n\r\n  # tenant\nX-Tenant: blue\n",
    );
    run(zipdeploy()
        .env("ZIPDEPLOY_HEADER_FILE", &headers)
        .args(["--url", &url, "--dest", &dest]))
    .expect(0);
    let other = sandbox.secret("other", "X-Other: 2");
    run(zipdeploy().args([
        "--url",
        &url,
        "--dest",
        &dest,
        "--header-file",
        &headers,
        "--header",
        "X-Flag: 1",
        "--header-file",
        &other,
    ]))
    .expect(0);
    let requests = server.requests();
    for request in &requests[..2] {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer t0k-from-file")
        );
        assert_eq!(request.header("x-tenant"), Some("blue"));
    }
    assert_eq!(requests[1].header("x-flag"), Some("1"));
    assert_eq!(requests[1].header("x-other"), Some("2"));

    // A malformed line: the error names the file, not what it holds.
    let bad = sandbox.secret("bad", "X-Ok: 1\nBearer s3cret-without-a-name\n");
    let out =
        run(zipdeploy().args(["--url", &url, "--dest", &dest, "--header-file", &bad])).expect(2);
    assert!(out.error_line().contains(&bad), "{}", out.stderr);
    assert!(!out.output_contains("s3cret"), "{}", out.stderr);
    assert_eq!(server.requests().len(), 2, "nothing fetched");
}

#[test]
fn every_variable_has_a_file_form() {
    let sandbox = Sandbox::new();
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let base = || {
        let mut cmd = zipdeploy();
        cmd.env("PACKAGE_ZIP_URL", server.url("/app.zip"))
            .env("PACKAGE_DIR", sandbox.dest());
        cmd
    };
    let entries = sandbox.secret("entries", "2\n");
    let limited = run(base().env("ZIPDEPLOY_MAX_ENTRIES_FILE", &entries)).expect(6);
    assert!(
        limited.error_line().contains("entry count"),
        "{}",
        limited.stderr
    );

    let wrong = sha(b"another package");
    let digest = sandbox.secret("sha", &format!("{wrong}\n"));
    let mismatch = run(base().env("PACKAGE_SHA256_FILE", &digest)).expect(4);
    assert!(
        mismatch.error_line().contains(&wrong),
        "{}",
        mismatch.stderr
    );
    assert!(!sandbox.dest().exists());

    let quiet = sandbox.secret("quiet", "yes\n");
    let out = run(base().env("ZIPDEPLOY_QUIET_FILE", &quiet)).expect(0);
    assert_eq!(out.stderr, "", "ZIPDEPLOY_QUIET_FILE silences the summary");

    // Unknown names stay errors, with a hint where one is near.
    let typo = run(base().env("ZIPDEPLOY_TIMEOUTS_FILE", &entries)).expect(2);
    assert!(
        typo.error_line().contains("ZIPDEPLOY_TIMEOUTS_FILE"),
        "{}",
        typo.stderr
    );
    let hinted = run(base().env("ZIPDEPLOY_URL_FILE", &entries)).expect(2);
    assert!(
        hinted.error_line().contains("PACKAGE_ZIP_URL_FILE"),
        "{}",
        hinted.stderr
    );
}

#[test]
fn a_variable_and_its_file_form_together_are_refused() {
    let sandbox = Sandbox::new();
    let server = TestServer::serving(app_zip("1"));
    let url = server.url("/app.zip");
    let url_file = sandbox.secret("url", &url);
    let both_urls = run(zipdeploy()
        .env("PACKAGE_ZIP_URL", &url)
        .env("PACKAGE_ZIP_URL_FILE", &url_file)
        .args(["--dest", &sandbox.dest_str()]))
    .expect(2);
    let line = both_urls.error_line();
    assert!(
        line.contains("PACKAGE_ZIP_URL and PACKAGE_ZIP_URL_FILE are both set"),
        "{line}"
    );

    let header_file = sandbox.secret("headers", "X-A: 1\n");
    let both_headers = run(zipdeploy()
        .env("ZIPDEPLOY_HEADER", "X-A: 2")
        .env("ZIPDEPLOY_HEADER_FILE", &header_file)
        .args(["--url", &url, "--dest", &sandbox.dest_str()]))
    .expect(2);
    let line = both_headers.error_line();
    assert!(
        line.contains("ZIPDEPLOY_HEADER and ZIPDEPLOY_HEADER_FILE are both set"),
        "{line}"
    );

    // An empty variable counts as unset, as everywhere else.
    run(zipdeploy()
        .env("PACKAGE_ZIP_URL", "")
        .env("PACKAGE_ZIP_URL_FILE", &url_file)
        .args(["--dest", &sandbox.dest_str()]))
    .expect(0);
    assert_eq!(server.requests().len(), 1, "only the last run fetched");
}

#[test]
fn an_unreadable_or_empty_secret_file_is_an_error_naming_the_path() {
    let sandbox = Sandbox::new();
    // A tree is already there: an empty URL file must not fall back to
    // running COMMAND on it.
    fs::create_dir(sandbox.dest()).unwrap();
    let dest = sandbox.dest_str();
    let missing = sandbox.tmp.path().join("no-such-secret");
    let missing = missing.to_str().unwrap();
    let directory = sandbox.tmp.path().to_str().unwrap();
    let empty = sandbox.secret("empty", "\n");
    let only_comments = sandbox.secret("comments", "# nothing yet\n\n");
    let huge = sandbox.secret("huge", &"x".repeat(65 * 1024));
    let bad_timeout = sandbox.secret("timeout", "s3cret-not-a-number\n");

    let cases: Vec<(&str, Command)> = vec![
        (missing, {
            let mut cmd = zipdeploy();
            cmd.args(["--url-file", missing]);
            cmd
        }),
        (missing, {
            let mut cmd = zipdeploy();
            cmd.env("PACKAGE_ZIP_URL_FILE", missing);
            cmd
        }),
        (missing, {
            let mut cmd = zipdeploy();
            cmd.env("ZIPDEPLOY_HEADER_FILE", missing)
                .args(["--url", "http://127.0.0.1:9/app.zip"]);
            cmd
        }),
        (directory, {
            let mut cmd = zipdeploy();
            cmd.args([
                "--header-file",
                directory,
                "--url",
                "http://127.0.0.1:9/app.zip",
            ]);
            cmd
        }),
        (empty.as_str(), {
            let mut cmd = zipdeploy();
            cmd.env("PACKAGE_ZIP_URL_FILE", &empty);
            cmd
        }),
        (only_comments.as_str(), {
            let mut cmd = zipdeploy();
            cmd.args(["--url-file", &only_comments]);
            cmd
        }),
        (huge.as_str(), {
            let mut cmd = zipdeploy();
            cmd.args(["--url-file", &huge]);
            cmd
        }),
        (bad_timeout.as_str(), {
            let mut cmd = zipdeploy();
            cmd.env("ZIPDEPLOY_TIMEOUT_FILE", &bad_timeout)
                .args(["--url", "http://127.0.0.1:9/app.zip"]);
            cmd
        }),
    ];
    for (path, mut cmd) in cases {
        let out = run(cmd.args(["--dest", &dest, "--", "echo", "COMMAND ran"])).expect(2);
        let line = out.error_line();
        assert!(line.contains(path), "names {path}: {line}");
        assert!(!out.output_contains("COMMAND ran"), "{}", out.stdout);
        assert!(!out.output_contains("s3cret"), "content shown: {line}");
        assert!(!out.output_contains("xxxx"), "content shown: {line}");
    }
}

#[test]
fn help_documents_the_secret_options() {
    let help = run(zipdeploy().arg("--help")).expect(0);
    for needle in [
        "--url-file FILE",
        "PACKAGE_ZIP_URL_FILE",
        "--header-file FILE",
        "ZIPDEPLOY_HEADER_FILE",
        "--pass-env",
        "ZIPDEPLOY_PASS_ENV",
        "VAR_FILE=PATH",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle}");
    }
}
