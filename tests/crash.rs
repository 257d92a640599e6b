//! `kill -9` at many points of a deploy — during the download, during
//! extraction, around activation — and after each: DEST is the old tree or
//! the new one, never a mix, the recorded state never lies, and the next run
//! succeeds and leaves no work files behind.
//!
//! The deploying process is this test binary itself, re-run with
//! `ZIPDEPLOY_CRASH_CHILD` set so only `crash_child` does anything; it prints
//! `@@F`, `@@E` and `@@A` when the fetch, the extraction (which overlaps the
//! download when it streams) and the activation begin, and the parent kills
//! it a chosen delay after one of them.
//!
//! The same kills are done with DEST a mount point (a tmpfs, in a mount
//! namespace of the test's own), where the tree lives one level down.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mounts::{in_mount_namespace, Mounted};
use common::*;
use zipdeploy::{Deploy, Layout, Sha256Digest, Stage};

/// The deploy run in the child process (a no-op in a normal test run).
#[test]
fn crash_child() {
    let Ok(url) = std::env::var("ZIPDEPLOY_CRASH_CHILD") else {
        return;
    };
    let dest = std::env::var("ZIPDEPLOY_CRASH_DEST").unwrap();
    let mut seen_fetch = false;
    let mut seen_extract = false;
    let marker = |m: &str| {
        println!("@@{m}");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
    };
    Deploy::new(&url)
        .unwrap()
        .dest(dest)
        .durable(false)
        .progress(move |p| {
            if p.stage == Stage::Fetch && !seen_fetch {
                seen_fetch = true;
                marker("F");
            }
            // Entries are extracted while the package streams in, or after.
            if (p.entries > 0 || p.stage == Stage::Extract) && !seen_extract {
                seen_extract = true;
                marker("E");
            }
            ControlFlow::Continue(())
        })
        .before_activate(|_| {
            marker("A");
            Ok(())
        })
        .run()
        .unwrap();
}

/// The new package: enough files that extraction takes a while.
fn new_package() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    use std::io::Write;
    for i in 0..1500 {
        w.start_file(format!("src/m{:02}/file{i}.php", i % 40), options)
            .unwrap();
        w.write_all(format!("<?php // file {i}\n").repeat(40).as_bytes())
            .unwrap();
    }
    w.start_file("VERSION", options).unwrap();
    w.write_all(b"new").unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn kill_9_at_any_point_leaves_old_or_new_never_a_mix() {
    if std::env::var("ZIPDEPLOY_CRASH_CHILD").is_ok()
        || std::env::var("ZIPDEPLOY_RESUME_CHILD").is_ok()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    kill_at_many_points(tmp.path(), &tmp.path().join("app"));
}

#[test]
fn kill_9_with_dest_a_mount_point_leaves_old_or_new_never_a_mix() {
    if std::env::var("ZIPDEPLOY_CRASH_CHILD").is_ok()
        || !in_mount_namespace("kill_9_with_dest_a_mount_point_leaves_old_or_new_never_a_mix")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    std::fs::create_dir(&dest).unwrap();
    let _volume = Mounted::tmpfs(&dest);
    kill_at_many_points(tmp.path(), &dest);
    assert_eq!(names_in(&dest), [".current.zipdeploy", "current"]);
}

/// Deploys an old package to `dest` (in `tmp`), then kills deploys of a new
/// one at many points, checking after each kill and after the next run.
fn kill_at_many_points(tmp: &Path, dest: &Path) {
    let layout = Layout::new(dest).unwrap();
    // Where the tree is: DEST, or one level down when DEST is a volume.
    let tree_at = layout.dest();
    let old = app_zip("old");
    let new = new_package();
    let server = {
        let (old, new) = (old.clone(), new.clone());
        TestServer::start(move |req, _| {
            if req.path == "/old.zip" {
                Reply::ok(old.clone())
            } else {
                // Slow enough that a kill can land mid-download.
                Reply::ok(new.clone()).fault(Fault::Trickle(64 * 1024, Duration::from_millis(5)))
            }
        })
    };
    let deploy_old = || {
        Deploy::new(&server.url("/old.zip"))
            .unwrap()
            .sha256(&Sha256Digest::of(&old).to_hex())
            .unwrap()
            .dest(dest)
            .durable(false)
            .run()
            .unwrap()
    };
    deploy_old();
    let old_tree = snapshot(tree_at);
    let new_tree = {
        let other = tmp.join("reference");
        std::fs::create_dir(&other).unwrap();
        let pkg = other.join("new.zip");
        std::fs::write(&pkg, &new).unwrap();
        Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(other.join("app"))
            .run()
            .unwrap();
        snapshot(&other.join("app"))
    };

    let micros = |us: u64| Duration::from_micros(us);
    let mut points = Vec::new();
    for delay in [0, 20_000, 60_000] {
        points.push(("F", micros(delay)));
    }
    for delay in [0, 3_000, 15_000, 40_000, 80_000] {
        points.push(("E", micros(delay)));
    }
    for delay in [0, 50, 200, 500, 1_000, 2_000, 5_000, 20_000] {
        points.push(("A", micros(delay)));
    }
    let (mut saw_old, mut saw_new) = (0, 0);
    for (marker, delay) in &points {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("ZIPDEPLOY_CRASH_CHILD", server.url("/new.zip"))
            .env("ZIPDEPLOY_CRASH_DEST", dest)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        let reached = lines.any(|l| {
            let l = l.unwrap_or_default();
            seen.push(l.clone());
            l.ends_with(&format!("@@{marker}"))
        });
        assert!(reached, "child ended before {marker}: {seen:?}");
        std::thread::sleep(*delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let tree = snapshot(tree_at);
        let what = format!("killed {delay:?} after {marker}");
        if layout.volume().is_some() {
            // The volume holds the tree and its state, nothing else.
            assert_eq!(names_in(dest), [".current.zipdeploy", "current"], "{what}");
        }
        if tree == old_tree {
            saw_old += 1;
        } else if tree == new_tree {
            saw_new += 1;
        } else {
            panic!("{what}: DEST is neither the old nor the new tree");
        }
        // The record must describe DEST, or nothing: never the other package.
        let recorded = Layout::new(dest).unwrap().current();
        if let Some(current) = &recorded {
            let expected = if tree == old_tree { &old } else { &new };
            assert_eq!(current.digest, Sha256Digest::of(expected), "{what}");
        }
        // The next run recovers, installs, and leaves no work files.
        let report = deploy_old();
        assert_eq!(report.dest, tree_at, "{what}");
        assert_eq!(snapshot(tree_at), old_tree, "{what}: redeploy");
        assert_eq!(
            report.noop,
            tree == old_tree && recorded.is_some(),
            "{what}"
        );
        assert_no_leftovers(layout.state_dir());
    }
    assert!(saw_old > 0, "some kills must land before activation");
    eprintln!(
        "{} kill points: {saw_old} left the old tree, {saw_new} the new",
        points.len()
    );
}

/// The deploy run by `kill_9_while_pruning_leaves_no_half_deleted_release`
/// in its child process (a no-op in a normal test run).
#[test]
fn prune_child() {
    let Ok(package) = std::env::var("ZIPDEPLOY_PRUNE_CHILD") else {
        return;
    };
    let dest = std::env::var("ZIPDEPLOY_CRASH_DEST").unwrap();
    Deploy::new(&package)
        .unwrap()
        .dest(dest)
        .keep(1)
        .durable(false)
        .run()
        .unwrap();
}

/// Killed while it removes the release it prunes, a deploy must not leave a
/// half-deleted tree that still looks like a kept release; the next run
/// finishes the removal.
#[test]
fn kill_9_while_pruning_leaves_no_half_deleted_release() {
    if std::env::var("ZIPDEPLOY_CRASH_CHILD").is_ok()
        || std::env::var("ZIPDEPLOY_PRUNE_CHILD").is_ok()
        || std::env::var("ZIPDEPLOY_RESUME_CHILD").is_ok()
    {
        return;
    }
    const BULK: usize = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let state = tmp.path().join(".app.zipdeploy");
    let package = |v: &str| {
        let path = tmp.path().join(format!("{v}.zip"));
        std::fs::write(&path, app_zip(v)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (v1, v2, v3) = (package("1"), package("2"), package("3"));
    let deploy = |pkg: &str| {
        Deploy::new(pkg)
            .unwrap()
            .dest(&dest)
            .keep(1)
            .durable(false)
            .run()
            .unwrap()
    };
    deploy(&v1);
    deploy(&v2);
    // The kept release (v1) is made big, so removing it takes a while.
    let kept = Layout::new(&dest).unwrap().releases();
    assert_eq!(kept.len(), 1);
    let oldest = kept[0].id.clone();
    let bulk = state.join("releases").join(&oldest).join("bulk");
    for i in 0..BULK {
        let dir = bulk.join(format!("d{i:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..3 {
            std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
        }
    }
    let count = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "prune_child", "--nocapture", "--test-threads=1"])
        .env("ZIPDEPLOY_PRUNE_CHILD", &v3)
        .env("ZIPDEPLOY_CRASH_DEST", &dest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the kept tree is partly gone, wherever it now is.
    loop {
        let mut places = vec![bulk.clone()];
        places.extend(
            names_in(&state)
                .into_iter()
                .filter(|n| n.starts_with("trash-"))
                .map(|n| state.join(n).join("bulk")),
        );
        if places.iter().any(|p| p.exists() && count(p) < BULK) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the deploy finished before its prune could be interrupted"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What status shows as kept is complete.
    for release in Layout::new(&dest).unwrap().releases() {
        if release.id == oldest {
            assert_eq!(
                count(&bulk),
                BULK,
                "a half-deleted release is listed as kept: {release:?}"
            );
        }
    }
    // The next run (a no-op: v3 is installed) finishes the prune.
    let report = deploy(&v3);
    assert!(report.noop);
    let releases = Layout::new(&dest).unwrap().releases();
    assert_eq!(releases.len(), 1, "{releases:?}");
    assert_ne!(releases[0].id, oldest);
    assert!(releases[0].installed.is_some());
    let names = names_in(&state);
    assert!(!names.iter().any(|n| n.starts_with("trash-")), "{names:?}");
    assert_eq!(
        names_in(&state.join("releases")),
        [releases[0].id.clone(), format!("{}.state", releases[0].id)]
    );
}

/// The deploy run by `kill_9_at_90_percent_then_the_next_run_fetches_the_rest`
/// in its child process (a no-op in a normal test run): prints `@@90` once
/// 90% of the package is on disk.
#[test]
fn resume_child() {
    let Ok(url) = std::env::var("ZIPDEPLOY_RESUME_CHILD") else {
        return;
    };
    let dest = std::env::var("ZIPDEPLOY_CRASH_DEST").unwrap();
    let sha256 = std::env::var("ZIPDEPLOY_RESUME_SHA256").unwrap();
    let mut told = false;
    Deploy::new(&url)
        .unwrap()
        .sha256(&sha256)
        .unwrap()
        .dest(dest)
        .progress(move |p| {
            let total = p.total_bytes.unwrap_or(u64::MAX);
            if p.stage == Stage::Fetch && p.bytes >= total / 10 * 9 && !told {
                told = true;
                println!("@@90");
                use std::io::Write;
                std::io::stdout().flush().unwrap();
            }
            ControlFlow::Continue(())
        })
        .run()
        .unwrap();
}

/// Bytes of noise from a xorshift generator.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A deploy killed at 90% of a large package leaves its download in the
/// state directory; the next run re-hashes it, fetches only the rest with
/// `Range` + `If-Range`, and installs exactly the package.
#[test]
fn kill_9_at_90_percent_then_the_next_run_fetches_the_rest() {
    if std::env::var("ZIPDEPLOY_CRASH_CHILD").is_ok()
        || std::env::var("ZIPDEPLOY_RESUME_CHILD").is_ok()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let data = noise(40 << 20);
    let package = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        use std::io::Write;
        w.start_file("data/noise.bin", stored).unwrap();
        w.write_all(&data).unwrap();
        w.start_file("VERSION", stored).unwrap();
        w.write_all(b"big").unwrap();
        w.finish().unwrap().into_inner()
    };
    let digest = Sha256Digest::of(&package);
    // Per request: the status and the body bytes sent (all of a 206).
    let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = {
        let (package, served) = (package.clone(), served.clone());
        TestServer::start(move |req, _| {
            let reply = Reply::file_with_ranges(req, &package, "\"big-1\"");
            served
                .lock()
                .unwrap()
                .push((reply.status, reply.body.len()));
            // Slow enough for the kill to land near 90%.
            reply.fault(Fault::Trickle(256 * 1024, Duration::from_millis(4)))
        })
    };
    let url = server.url("/big.zip");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_child", "--nocapture", "--test-threads=1"])
        .env("ZIPDEPLOY_RESUME_CHILD", &url)
        .env("ZIPDEPLOY_RESUME_SHA256", digest.to_hex())
        .env("ZIPDEPLOY_CRASH_DEST", &dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let reached = lines.any(|l| l.unwrap_or_default().ends_with("@@90"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(reached, "the child ended before 90% of the download");
    assert!(!dest.exists(), "killed before activation");
    let kept = std::fs::metadata(tmp.path().join(".app.zipdeploy/partial.zip"))
        .unwrap()
        .len();
    assert!(kept >= package.len() as u64 / 10 * 9, "{kept} bytes kept");

    let report = Deploy::new(&url)
        .unwrap()
        .digest(digest)
        .dest(&dest)
        .run()
        .unwrap();
    let requests = server.requests();
    let last = requests.last().unwrap();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(last
        .header("range")
        .is_some_and(|r| r.starts_with("bytes=")));
    assert_eq!(last.header("if-range"), Some("\"big-1\""));
    let (status, sent) = *served.lock().unwrap().last().unwrap();
    assert_eq!(status, 206);
    let at_most = package.len() * 15 / 100;
    assert!(sent <= at_most, "fetched {sent} of {} bytes", package.len());
    assert_eq!(report.bytes_downloaded, sent as u64);
    assert_eq!(report.digest, digest);
    // Exactly the package.
    let tree = snapshot(&dest);
    let names: Vec<_> = tree
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["VERSION", "data", "data/noise.bin"]);
    assert_eq!(read(dest.join("VERSION")), b"big");
    assert!(
        Sha256Digest::of(&read(dest.join("data/noise.bin"))) == Sha256Digest::of(&data),
        "the resumed file's bytes differ"
    );
    let left: Vec<_> = names_in(&tmp.path().join(".app.zipdeploy"))
        .into_iter()
        .filter(|n| n.starts_with("partial") || n.starts_with("download-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
