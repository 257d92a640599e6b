//! The example CLI's fleet options as a subprocess against a real HTTP
//! server on 127.0.0.1: --minisign-key/--minisign-sig, --sha256-from,
//! mirrors (--url repeated, PACKAGE_ZIP_URL with several), --cache,
//! --rollback and --status.

mod common;
use common::sha;

use std::fs;
use std::process::Command;

use common::cli::{self, run};
use common::signing::Signer;
use common::*;

/// The CLI with a clean environment.
fn zipdeploy() -> Command {
    cli::command()
}

#[test]
fn signed_packages_by_key_string_or_pub_file() {
    let signer = Signer::new();
    let v1 = app_zip("1");
    let v2 = app_zip("2");
    let server = site(vec![
        ("/v1.zip", v1.clone()),
        ("/v1.zip.minisig", signer.sign(&v1).into_bytes()),
        ("/v2.zip", v2.clone()),
        ("/v2.zip.minisig", signer.sign(&v1).into_bytes()),
        ("/v3.zip", v2.clone()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let key = signer.public_base64();
    let out = run(zipdeploy()
        .args([
            "--url",
            &server.url("/v1.zip"),
            "--json",
            "--minisign-key",
            &key,
        ])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(
        out.stdout
            .contains(&format!("\"signed_by\":\"{}\"", signer.key_id())),
        "{}",
        out.stdout
    );

    // Through the environment, with the key in a .pub file: v2 carries v1's
    // signature, refused with the digest class and the key id named.
    let pub_file = tmp.path().join("minisign.pub");
    fs::write(&pub_file, signer.public_file()).unwrap();
    let out = run(zipdeploy()
        .env("PACKAGE_ZIP_URL", server.url("/v2.zip"))
        .env("PACKAGE_DIR", &dest)
        .env("ZIPDEPLOY_MINISIGN_KEY", &pub_file))
    .expect(4);
    assert!(out
        .stderr
        .starts_with("zipdeploy: error: minisign signature"));
    assert!(out.stderr.contains(&signer.key_id()), "{}", out.stderr);
    assert_eq!(version(&dest), "1");

    // No signature at all: 42, exit 4, with --json the code.
    let out = run(zipdeploy()
        .args([
            "--url",
            &server.url("/v3.zip"),
            "--json",
            "--minisign-key",
            &key,
        ])
        .arg("--dest")
        .arg(&dest))
    .expect(4);
    assert!(out.stdout.contains("\"code\":42"), "{}", out.stdout);

    // --minisign-sig names the signature: v1's for v1 under another name.
    let sig_file = tmp.path().join("v1.sig");
    fs::write(&sig_file, signer.sign(&v1)).unwrap();
    run(zipdeploy()
        .args(["--url", &server.url("/v1.zip"), "--minisign-key", &key])
        .arg("--minisign-sig")
        .arg(&sig_file)
        .arg("--dest")
        .arg(tmp.path().join("other")))
    .expect(0);

    // A key that is neither a key nor a readable file: a usage or I/O error.
    let out = run(zipdeploy()
        .args(["--url", &server.url("/v1.zip"), "--minisign-key", "nope"])
        .arg("--dest")
        .arg(&dest));
    assert_ne!(out.code, 0);
    let out = run(zipdeploy()
        .args(["--url", &server.url("/v1.zip"), "--minisign-sig", "x.sig"])
        .arg("--dest")
        .arg(&dest))
    .expect(2);
    assert!(out.stderr.contains("--minisign-sig needs --minisign-key"));
}

#[test]
fn digest_from_a_sidecar() {
    let pkg = app_zip("1");
    let server = site(vec![
        ("/app.zip", pkg.clone()),
        (
            "/app.zip.sha256",
            format!("{}  app.zip\n{}  other.zip\n", sha(&pkg), "0".repeat(64)).into_bytes(),
        ),
        ("/bad.sha256", b"<html>oops</html>".to_vec()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--json"])
        .args(["--sha256-from", &server.url("/app.zip.sha256")])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(out.stdout.contains(&sha(&pkg)), "{}", out.stdout);
    let out = run(zipdeploy()
        .env("ZIPDEPLOY_SHA256_FROM", server.url("/app.zip.sha256"))
        .args(["--url", &server.url("/app.zip"), "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(out.stdout.contains("\"noop\":true"), "{}", out.stdout);
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip")])
        .args(["--sha256-from", &server.url("/bad.sha256")])
        .arg("--dest")
        .arg(&dest))
    .expect(4);
    assert!(out.stderr.contains("SHA-256 sidecar"), "{}", out.stderr);
    let out = run(zipdeploy()
        .args(["--url", &server.url("/app.zip"), "--sha256", &sha(&pkg)])
        .args(["--sha256-from", &server.url("/app.zip.sha256")])
        .arg("--dest")
        .arg(&dest))
    .expect(2);
    assert!(out.stderr.contains("not both"), "{}", out.stderr);
}

#[test]
fn mirrors_from_repeated_flags_or_one_variable() {
    let pkg = app_zip("1");
    let good = site(vec![("/app.zip", pkg.clone())]);
    let wrong = site(vec![("/app.zip", app_zip("evil"))]);
    let missing = site(vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let out = run(zipdeploy()
        .args(["--url", &missing.url("/app.zip")])
        .args(["--url", &wrong.url("/app.zip")])
        .args(["--url", &good.url("/app.zip")])
        .args(["--sha256", &sha(&pkg), "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(
        out.stdout
            .contains(&format!("\"source\":\"{}\"", good.url("/app.zip"))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"mirrors_skipped\":[\""),
        "{}",
        out.stdout
    );
    assert_eq!(version(&dest), "1");

    // PACKAGE_ZIP_URL holds several, separated by whitespace; all fail.
    fs::remove_dir_all(&dest).unwrap();
    let secret = missing
        .url("/app.zip")
        .replace("http://", "http://user:hunter22@");
    let out = run(zipdeploy()
        .env(
            "PACKAGE_ZIP_URL",
            format!("{secret}\n  {}\t", wrong.url("/app.zip")),
        )
        .env("PACKAGE_SHA256", sha(&pkg))
        .env("PACKAGE_DIR", &dest))
    .expect(3);
    assert!(
        out.stderr
            .starts_with("zipdeploy: error: all 2 package locations failed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HTTP status 404"), "{}", out.stderr);
    assert!(out.stderr.contains("SHA-256 mismatch"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter22"), "{}", out.stderr);
    assert!(!dest.exists());
}

#[test]
fn the_cache_saves_the_second_download() {
    let pkg = app_zip("1");
    let server = site(vec![("/app.zip", pkg.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for (dest, hit) in [("a", false), ("b", true)] {
        let out = run(zipdeploy()
            .args([
                "--url",
                &server.url("/app.zip"),
                "--sha256",
                &sha(&pkg),
                "--json",
            ])
            .env("ZIPDEPLOY_CACHE", &cache)
            .args(["--cache-max-size", "1G"])
            .arg("--dest")
            .arg(tmp.path().join(dest)))
        .expect(0);
        assert!(
            out.stdout.contains(&format!("\"cache_hit\":{hit}")),
            "{}",
            out.stdout
        );
    }
    assert_eq!(server.requests().len(), 1);
    assert!(cache
        .join("sha256")
        .join(format!("{}.zip", sha(&pkg)))
        .is_file());
}

#[test]
fn status_and_rollback() {
    let server = site(vec![("/v1.zip", app_zip("1")), ("/v2.zip", app_zip("2"))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    // Nothing installed: exit 1, and it says so.
    let out = run(zipdeploy().arg("--status").arg("--dest").arg(&dest)).expect(1);
    assert!(
        out.stdout.contains("installed:     nothing"),
        "{}",
        out.stdout
    );
    let out = run(zipdeploy()
        .args(["--status", "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(1);
    assert!(
        out.stdout
            .contains("\"installed\":false,\"current\":null,\"kept\":[]"),
        "{}",
        out.stdout
    );
    // Rollback with nothing kept: exit 7, code 72.
    let out = run(zipdeploy()
        .args(["--rollback", "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(7);
    assert!(out.stdout.contains("\"code\":72"), "{}", out.stdout);

    install_versions(&server, &dest, &["1", "2"]);
    let out = run(zipdeploy().arg("--status").arg("--dest").arg(&dest)).expect(0);
    assert!(out.stdout.contains(&sha(&app_zip("2"))), "{}", out.stdout);
    assert!(
        out.stdout.contains(&server.url("/v2.zip")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("kept:          1 release(s)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("  1. {}", sha(&app_zip("1")))));
    let out = run(zipdeploy()
        .args(["--status", "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(
        out.stdout.contains(&format!(
            "\"installed\":true,\"current\":{{\"digest\":\"{}\"",
            sha(&app_zip("2"))
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"installed_at_utc\":\"20"),
        "{}",
        out.stdout
    );

    // Rollback (PACKAGE_ZIP_URL in the environment is ignored), then a
    // command runs in the restored tree.
    let out = run(zipdeploy()
        .env("PACKAGE_ZIP_URL", server.url("/v2.zip"))
        .arg("--rollback")
        .arg("--dest")
        .arg(&dest)
        .args(["--", "cat", "VERSION"]))
    .expect(0);
    assert_eq!(out.stdout, "1");
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    let out = run(zipdeploy()
        .args(["--rollback", "--json"])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert!(
        out.stdout.contains(&format!(
            "\"digest\":\"{}\",\"previous\":\"{}\"",
            sha(&app_zip("2")),
            sha(&app_zip("1"))
        )),
        "{}",
        out.stdout
    );
    assert_eq!(version(&dest), "2");

    // Usage errors.
    let out = run(zipdeploy()
        .args(["--rollback", "--status"])
        .arg("--dest")
        .arg(&dest))
    .expect(2);
    assert!(out.stderr.contains("exclude each other"), "{}", out.stderr);
    run(zipdeploy()
        .args(["--status", "--url", &server.url("/v1.zip")])
        .arg("--dest")
        .arg(&dest))
    .expect(2);
    run(zipdeploy()
        .arg("--status")
        .arg("--dest")
        .arg(&dest)
        .args(["--", "true"]))
    .expect(2);
    // --rollback has no variable: ZIPDEPLOY_ROLLBACK is unknown.
    run(zipdeploy()
        .env("ZIPDEPLOY_ROLLBACK", "1")
        .arg("--dest")
        .arg(&dest)
        .args(["--", "true"]))
    .expect(2);
}

#[test]
fn help_lists_the_fleet_options() {
    let out = run(zipdeploy().arg("--help")).expect(0);
    for needle in [
        "--minisign-key KEY",
        "--minisign-sig URL",
        "--sha256-from URL",
        "--cache DIR",
        "--cache-max-size BYTES",
        "default 10G",
        "--rollback",
        "--status",
        "--status: nothing installed",
    ] {
        assert!(out.stdout.contains(needle), "{needle}:\n{}", out.stdout);
    }
}

#[test]
fn rollback_with_sync_is_accepted_and_rolls_back() {
    let server = site(vec![("/v1.zip", app_zip("1")), ("/v2.zip", app_zip("2"))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    install_versions(&server, &dest, &["1", "2"]);
    run(zipdeploy()
        .args(["--rollback", "--sync", "--quiet"])
        .arg("--dest")
        .arg(&dest))
    .expect(0);
    assert_eq!(version(&dest), "1");
}

/// Installs `/v<version>.zip` of `server` at `dest`, for each version in turn.
fn install_versions(server: &TestServer, dest: &std::path::Path, versions: &[&str]) {
    for v in versions {
        run(zipdeploy()
            .args(["--url", &server.url(&format!("/v{v}.zip")), "--quiet"])
            .arg("--dest")
            .arg(dest))
        .expect(0);
    }
}
