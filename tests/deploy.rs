//! End-to-end deploys against a real HTTP server on 127.0.0.1.

mod common;
use common::sha;

use std::fs;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use zipdeploy::{Deploy, Error, ErrorClass, Limits};

/// Deploys `pkg` (served at /app.zip) into `dest` and returns the report.
fn deploy_bytes(pkg: &[u8], dest: &Path) -> zipdeploy::Report {
    let server = TestServer::serving(pkg.to_vec());
    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(pkg))
        .unwrap()
        .dest(dest)
        .run()
        .unwrap()
}

/// The parent holds DEST and its state dir, nothing else, and the state
/// dir no leftover of a run.
fn assert_nothing_outside(parent: &Path) {
    let names = names_in(parent);
    assert!(
        names.iter().all(|n| n == "app" || n == ".app.zipdeploy"),
        "unexpected files beside DEST: {names:?}"
    );
    assert_no_leftovers(&parent.join(".app.zipdeploy"));
}

#[test]
fn deploys_a_package_with_its_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let report = deploy_bytes(&pkg, &dest);

    assert!(!report.noop);
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    assert_eq!(report.bytes_downloaded, pkg.len() as u64);
    assert_eq!(report.package_size, pkg.len() as u64);
    assert_eq!(report.entries, 5);
    assert_eq!(report.files, 4);
    let sizes = [
        "<?php echo 'version 1';\n",
        "body { color: black }\n",
        "#!/bin/sh\necho started\n",
        "1",
    ];
    assert_eq!(
        report.bytes_written,
        sizes.iter().map(|s| s.len() as u64).sum::<u64>()
    );
    assert!(report.timings.total >= report.timings.fetch);

    assert_eq!(read(dest.join("index.php")), b"<?php echo 'version 1';\n");
    assert_eq!(read(dest.join("VERSION")), b"1");
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/start.sh"), 0o755);
    assert_eq!(mode("index.php"), 0o644);
    assert_eq!(mode("bin"), 0o755, "implied directory gets 0755");
    assert_eq!(mode(""), 0o755, "a new DEST is 0755");
    assert!(fs::symlink_metadata(&dest).unwrap().is_dir());
    assert_nothing_outside(tmp.path());
}

#[test]
fn deploys_without_a_digest_and_reports_the_one_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("2");
    let server = TestServer::serving(pkg.clone());
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    assert_eq!(read(dest.join("VERSION")), b"2");
    // Without an expected digest the package is fetched, then found installed.
    let again = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert!(again.noop);
    assert_eq!(again.files, 0);
}

#[test]
fn http_404_fails_with_the_status_and_leaves_dest_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(&app_zip("1"), &dest);
    let before = snapshot(&dest);

    let server = TestServer::start(|_, _| Reply::status(404));
    let err = Deploy::new(&server.url("/missing.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 404, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Network);
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
    assert_eq!(snapshot(&dest), before);
    assert_nothing_outside(tmp.path());
}

#[test]
fn a_404_on_a_fresh_dest_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let server = TestServer::start(|_, _| Reply::status(404));
    let err = Deploy::new(&server.url("/x.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 30);
    assert!(!dest.exists());
    assert_nothing_outside(tmp.path());
}

#[test]
fn digest_mismatch_keeps_the_previous_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(&app_zip("1"), &dest);
    let before = snapshot(&dest);

    let served = app_zip("evil");
    let server = TestServer::serving(served.clone());
    let wanted = sha(&app_zip("2"));
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&wanted)
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    match &err {
        Error::DigestMismatch { expected, actual } => {
            assert_eq!(expected, &wanted);
            assert_eq!(actual, &sha(&served));
        }
        other => panic!("unexpected {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&wanted) && text.contains(&sha(&served)),
        "{text}"
    );
    assert_eq!(snapshot(&dest), before);
    assert_nothing_outside(tmp.path());
}

#[test]
fn an_archive_with_dot_dot_keeps_the_previous_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(&app_zip("1"), &dest);
    let before = snapshot(&dest);

    let hostile = zip_of(&[
        Entry::File("ok.txt", b"fine"),
        Entry::File("../escaped.txt", b"pwned"),
    ]);
    let server = TestServer::serving(hostile.clone());
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&hostile))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeEntry { entry, .. } if entry == "../escaped.txt"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Archive);
    assert_eq!(snapshot(&dest), before);
    assert!(!tmp.path().join("escaped.txt").exists());
    assert_nothing_outside(tmp.path());
}

#[test]
fn redeploying_the_installed_digest_is_a_noop_without_download() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let run = || {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .dest(&dest)
            .run()
            .unwrap()
    };
    let first = run();
    assert!(!first.noop);
    let inode = fs::metadata(&dest).unwrap().ino();
    let second = run();
    assert!(second.noop);
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.bytes_downloaded, 0);
    assert_eq!(server.requests().len(), 1, "the no-op must not download");
    assert_eq!(fs::metadata(&dest).unwrap().ino(), inode, "tree untouched");
}

/// A DEST removed and made again by hand (`rm -rf DEST; mkdir DEST`) often
/// gets its old inode number back (ext4 hands it out again at once). The
/// record of the tree that was there must not be believed, or the next
/// deploy of that digest is a "no-op" that leaves DEST empty. Where the
/// filesystem does not give the number back within a few tries, the record
/// is made to name the new directory's device and inode, as a reuse would.
#[test]
fn a_dest_made_again_on_the_same_inode_is_deployed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let file = tmp.path().join("app-1.zip");
    fs::write(&file, &pkg).unwrap();
    let run = || {
        Deploy::new(file.to_str().unwrap())
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .dest(&dest)
            .durable(false)
            .run()
            .unwrap()
    };
    assert!(!run().noop);
    let old = fs::metadata(&dest).unwrap();
    let mut reused = false;
    for _ in 0..20 {
        fs::remove_dir_all(&dest).unwrap();
        fs::create_dir(&dest).unwrap();
        if fs::metadata(&dest).unwrap().ino() == old.ino() {
            reused = true;
            break;
        }
    }
    if !reused {
        let record = tmp.path().join(".app.zipdeploy/current");
        let new = fs::metadata(&dest).unwrap();
        let text = fs::read_to_string(&record).unwrap().replace(
            &format!("tree={}:{}\n", old.dev(), old.ino()),
            &format!("tree={}:{}\n", new.dev(), new.ino()),
        );
        fs::write(&record, text).unwrap();
    }
    let status = zipdeploy::status(&dest).unwrap();
    assert_eq!(status.current, None, "reused: {reused}");
    let report = run();
    assert!(!report.noop, "reused: {reused}");
    assert_eq!(read(dest.join("VERSION")), b"1");
}

#[test]
fn replacing_a_tree_keeps_dest_mode_and_the_previous_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(&app_zip("1"), &dest);
    chmod(&dest, 0o750);
    deploy_bytes(&app_zip("2"), &dest);
    assert_eq!(read(dest.join("VERSION")), b"2");
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o750);
    let releases = tmp.path().join(".app.zipdeploy/releases");
    let kept: Vec<_> = names_in(&releases)
        .into_iter()
        .filter(|n| !n.ends_with(".state"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(read(releases.join(&kept[0]).join("VERSION")), b"1");
}

#[test]
fn concurrent_deploys_are_serialised_and_end_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let a = app_zip("a");
    let b = zip_of(&[
        Entry::File("VERSION", b"b"),
        Entry::File("only-in-b/file.txt", b"b"),
    ]);
    let server = {
        let (a, b) = (a.clone(), b.clone());
        TestServer::start(move |req, _| {
            let body = if req.path.ends_with("a.zip") { &a } else { &b };
            Reply::ok(body.clone())
        })
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (name, pkg) = if i % 2 == 0 { ("a", &a) } else { ("b", &b) };
                let url = server.url(&format!("/{name}.zip"));
                let dest = dest.clone();
                s.spawn(move || {
                    Deploy::new(&url)
                        .unwrap()
                        .sha256(&sha(pkg))
                        .unwrap()
                        .dest(dest)
                        .durable(false)
                        .run()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
    }
    let version = read(dest.join("VERSION"));
    let expected = if version == b"a" {
        snapshot_of_package(&a)
    } else {
        snapshot_of_package(&b)
    };
    assert_eq!(snapshot(&dest), expected, "DEST is one complete package");
    assert_nothing_outside(tmp.path());
}

/// The tree a package installs, by deploying it alone.
fn snapshot_of_package(pkg: &[u8]) -> Snapshot {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(pkg, &dest);
    snapshot(&dest)
}

#[test]
fn local_paths_and_file_urls_take_the_same_path() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg_path = tmp.path().join("pkg.zip");
    let pkg = app_zip("local");
    fs::write(&pkg_path, &pkg).unwrap();
    for (i, location) in [
        pkg_path.display().to_string(),
        format!("file://{}", pkg_path.display()),
    ]
    .iter()
    .enumerate()
    {
        let dest = tmp.path().join(format!("dest{i}"));
        let report = Deploy::new(location)
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .dest(&dest)
            .run()
            .unwrap();
        assert_eq!(report.bytes_downloaded, 0);
        assert_eq!(read(dest.join("VERSION")), b"local");
    }
    let err = Deploy::new(&tmp.path().join("nope.zip").display().to_string())
        .unwrap()
        .dest(tmp.path().join("dest9"))
        .run()
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Filesystem);
    assert!(err.to_string().contains("nope.zip"), "{err}");
}

#[test]
fn modes_symlinks_and_special_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = zip_of(&[
        Entry::FileMode("bin/tool", b"#!/bin/sh\n", 0o4755),
        Entry::FileMode("secret.txt", b"s", 0o600),
        Entry::DirMode("shared/", 0o3777),
        Entry::File("shared/data.txt", b"d"),
        Entry::DirMode("private/", 0o700),
        Entry::Symlink("current", "shared/data.txt"),
        Entry::Symlink("shared/up", "../secret.txt"),
    ]);
    deploy_bytes(&pkg, &dest);
    let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/tool"), 0o755, "setuid cleared");
    assert_eq!(mode("secret.txt"), 0o600);
    assert_eq!(mode("shared"), 0o777, "setgid and sticky cleared");
    assert_eq!(mode("private"), 0o700, "a mode the archive gives is kept");
    assert_eq!(
        fs::read_link(dest.join("current")).unwrap(),
        Path::new("shared/data.txt")
    );
    assert_eq!(read(dest.join("shared/up")), b"s");
}

#[test]
fn progress_reports_every_stage_and_can_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let stages = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stages.clone();
    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .progress(move |p| {
            seen.lock().unwrap().push(p.stage);
            ControlFlow::Continue(())
        })
        .run()
        .unwrap();
    let stages = stages.lock().unwrap().clone();
    use zipdeploy::Stage;
    for s in [Stage::Fetch, Stage::Extract, Stage::Install] {
        assert!(stages.contains(&s), "{s:?} missing from {stages:?}");
    }

    let before = snapshot(&dest);
    let calls = AtomicUsize::new(0);
    let err = Deploy::new(&server.url("/other.zip"))
        .unwrap()
        .dest(&dest)
        .sha256(&sha(&app_zip("2")))
        .unwrap()
        .progress(|_| {
            calls.fetch_add(1, Ordering::SeqCst);
            ControlFlow::Break(())
        })
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(snapshot(&dest), before);
    assert_nothing_outside(tmp.path());
}

#[test]
fn a_failing_hook_leaves_dest_alone_and_a_passing_one_sees_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy_bytes(&app_zip("1"), &dest);
    let before = snapshot(&dest);
    let pkg = app_zip("2");
    let server = TestServer::serving(pkg.clone());
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .before_activate(|staged| {
            assert_eq!(read(staged.join("VERSION")), b"2");
            Err("init.sh exited with status 3".into())
        })
        .run()
        .unwrap_err();
    assert_eq!(err.to_string(), "hook failed: init.sh exited with status 3");
    assert_eq!(err.class(), ErrorClass::Hook);
    assert_eq!(snapshot(&dest), before);
    assert_nothing_outside(tmp.path());

    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .before_activate(|staged| {
            fs::write(staged.join("generated.txt"), b"by init").map_err(|e| e.to_string())
        })
        .run()
        .unwrap();
    assert_eq!(read(dest.join("generated.txt")), b"by init");
}

#[test]
fn limits_are_enforced_with_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let attempt = |limits: Limits, max_download: u64| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .dest(&dest)
            .limits(limits)
            .max_download(max_download)
            .run()
            .unwrap_err()
    };
    let entries = attempt(
        Limits {
            max_entries: 3,
            ..Limits::default()
        },
        u64::MAX,
    );
    assert_eq!(
        entries.to_string(),
        "entry count limit exceeded: 5 > 3",
        "{entries}"
    );
    let total = attempt(
        Limits {
            max_total_size: 40,
            ..Limits::default()
        },
        u64::MAX,
    );
    assert!(
        total
            .to_string()
            .starts_with("total uncompressed size limit exceeded"),
        "{total}"
    );
    let download = attempt(Limits::default(), 100);
    assert!(
        download
            .to_string()
            .starts_with("download size limit exceeded"),
        "{download}"
    );
    assert_eq!(download.class(), ErrorClass::Limit);
    assert!(!dest.exists());
    assert_nothing_outside(tmp.path());
}

#[test]
fn credentials_in_the_url_are_sent_but_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |req, _| match req.header("authorization") {
            // "deploy:hunter2-secret" in base64.
            Some("Basic ZGVwbG95Omh1bnRlcjItc2VjcmV0") => Reply::ok(pkg.clone()),
            _ => Reply::status(401),
        })
    };
    let with_auth = server
        .url("/app.zip")
        .replace("http://", "http://deploy:hunter2-secret@");
    let report = Deploy::new(&with_auth).unwrap().dest(&dest).run().unwrap();
    assert!(!report.source.contains("hunter2"), "{}", report.source);
    let state = fs::read_to_string(tmp.path().join(".app.zipdeploy/current")).unwrap();
    assert!(!state.contains("hunter2"), "{state}");

    let wrong = server
        .url("/app.zip")
        .replace("http://", "http://deploy:wrong-hunter3@");
    let err = Deploy::new(&wrong)
        .unwrap()
        .dest(&dest)
        .sha256(&sha(b"other"))
        .unwrap()
        .run()
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 401, .. }),
        "{err}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter3"), "{shown}");
}

#[test]
fn an_html_page_served_as_200_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let server = TestServer::start(|_, _| {
        Reply::ok(b"<!DOCTYPE html><html><body>Not Found</body></html>".to_vec())
    });
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 50, "{err}");
    assert!(err.to_string().contains("HTML"), "{err}");
    assert!(!dest.exists());
    assert_nothing_outside(tmp.path());
}

#[test]
fn query_tokens_of_presigned_urls_are_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let url = server.url("/app.zip?X-Amz-Signature=t0ps3cret-sig&X-Amz-Expires=60");
    let report = Deploy::new(&url).unwrap().dest(&dest).run().unwrap();
    assert!(!report.source.contains("t0ps3cret"), "{}", report.source);
    assert!(
        report.source.contains("X-Amz-Signature=***"),
        "{}",
        report.source
    );
    let state = fs::read_to_string(tmp.path().join(".app.zipdeploy/current")).unwrap();
    assert!(!state.contains("t0ps3cret"), "{state}");

    let missing = TestServer::start(|_, _| Reply::status(403));
    let err = Deploy::new(&missing.url("/app.zip?token=t0ps3cret-tok"))
        .unwrap()
        .dest(&dest)
        .sha256(&sha(b"other"))
        .unwrap()
        .run()
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("t0ps3cret"), "{shown}");
}
