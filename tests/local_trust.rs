//! The local disk as a trust boundary (DESIGN.md guarantees 8 and 10): the
//! state dir beside DEST and the shared cache are used only when owned by the
//! effective user and not writable by others, nothing in them is reached
//! through a symlink or blocks on a FIFO, and no leftover in them, however
//! deep or stubborn, blocks a later deploy.
//!
//! CI runs as root: the hostile state is made by root and given to uid 65534
//! with chown (the user need not exist), and where a deploy must run as
//! another user, this test binary re-runs itself as uid 65534 (`setpriv`) or
//! under a small `ulimit -n` / `umask 000` (`sh`), with `ZIPDEPLOY_TRUST_CHILD`
//! set so only `trust_child` does anything.

mod common;
use common::{cli_path, sha};

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::signing::Signer;
use common::*;
use zipdeploy::signature::PublicKey;
use zipdeploy::Deploy;

const NOBODY: u32 = 65534;

/// Deploys a local package (keeping one release).
fn deploy(pkg: &[u8], dest: &Path) -> zipdeploy::Result<zipdeploy::Report> {
    let file = dest.with_extension(format!("{}.zip", &sha(pkg)[..8]));
    fs::write(&file, pkg).unwrap();
    Deploy::new(file.to_str().unwrap())?
        .sha256(&sha(pkg))?
        .dest(dest)
        .durable(false)
        .run()
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The deploy run in a child process (a no-op in a normal test run):
/// `ZIPDEPLOY_TRUST_CHILD` is the package location, `ZIPDEPLOY_TRUST_DEST`
/// the destination, `ZIPDEPLOY_TRUST_CACHE` an optional cache. Prints
/// `@@OK <warnings>` or `@@ERR <error>`.
#[test]
fn trust_child() {
    let Ok(location) = std::env::var("ZIPDEPLOY_TRUST_CHILD") else {
        return;
    };
    let mut deploy = Deploy::new(&location)
        .unwrap()
        .dest(std::env::var("ZIPDEPLOY_TRUST_DEST").unwrap())
        .durable(false);
    if let Ok(cache) = std::env::var("ZIPDEPLOY_TRUST_CACHE") {
        deploy = deploy.cache(cache);
    }
    if let Ok(hex) = std::env::var("ZIPDEPLOY_TRUST_SHA256") {
        deploy = deploy.sha256(&hex).unwrap();
    }
    match deploy.run() {
        Ok(report) => println!("@@OK {:?}", report.warnings),
        Err(e) => println!("@@ERR {e}"),
    }
}

/// Runs `trust_child` through `wrapper` (a command line whose last word is
/// followed by the test binary and its arguments); returns its `@@` line.
fn run_child(wrapper: &[&str], location: &str, dest: &Path, extra: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(&exe)
        .args(["--exact", "trust_child", "--nocapture", "--test-threads=1"])
        .env("ZIPDEPLOY_TRUST_CHILD", location)
        .env("ZIPDEPLOY_TRUST_DEST", dest);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("@@").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

// ---------------------------------------------------------------------------
// DEST's parent
// ---------------------------------------------------------------------------

/// In a parent others can write (`/tmp`, 1777), another user can create
/// DEST before the first deploy. The tree deployed there must not inherit
/// that user's ownership or open mode: they could then rename and rewrite
/// what root deployed (and the CLI's COMMAND runs). Where only the
/// deploying user can write the parent, DEST's owner and mode were chosen
/// by root (a web server's user) and are kept.
#[test]
fn a_dest_another_user_planted_in_a_shared_parent_is_not_handed_to_them() {
    let tmp = tempfile::tempdir().unwrap();
    let me = fs::metadata(tmp.path()).unwrap().uid();
    // DEST made by `nobody` with `dest_mode` in a parent with `parent_mode`,
    // then deployed: its owner and mode afterwards.
    let planted = |parent: &str, parent_mode: u32, dest_mode: u32| {
        let parent = tmp.path().join(parent);
        fs::create_dir(&parent).unwrap();
        chmod(&parent, parent_mode);
        let dest = parent.join("app");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("planted"), b"x").unwrap();
        chmod(&dest, dest_mode);
        chown(&dest, NOBODY);
        deploy(&app_zip("1"), &dest).unwrap();
        assert_eq!(read(dest.join("VERSION")), b"1");
        assert!(!dest.join("planted").exists());
        (fs::metadata(&dest).unwrap().uid(), mode(&dest))
    };
    assert_eq!(
        planted("shared", 0o1777, 0o777),
        (me, 0o755),
        "DEST given away"
    );
    assert_eq!(
        planted("private", 0o755, 0o750),
        (NOBODY, 0o750),
        "owner kept"
    );
}

// ---------------------------------------------------------------------------
// The state dir
// ---------------------------------------------------------------------------

#[test]
fn a_state_dir_owned_by_another_user_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let state = tmp.path().join(".app.zipdeploy");
    fs::create_dir(&state).unwrap();
    fs::create_dir(state.join("releases")).unwrap();
    fs::write(state.join("staging-planted"), b"x").unwrap();
    chmod(&state, 0o700);
    chown(&state, NOBODY);
    let before = snapshot(&state);

    let err = deploy(&app_zip("1"), &dest).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&state.display().to_string()), "{msg}");
    assert!(
        msg.contains("owned by uid 65534") && msg.contains("chown"),
        "{msg}"
    );
    assert!(msg.contains("or remove it"), "{msg}");
    assert_eq!(err.class() as u8, 7);
    assert!(!dest.exists());
    assert_eq!(snapshot(&state), before);
    assert_eq!(fs::metadata(&state).unwrap().uid(), NOBODY);
    // Status does not believe it either; rollback refuses.
    for err in [
        zipdeploy::status(&dest).unwrap_err(),
        zipdeploy::rollback(&dest).unwrap_err(),
    ] {
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }
    assert_eq!(snapshot(&state), before);
}

#[test]
fn a_state_dir_group_or_others_can_write_is_refused() {
    for bad in [0o777, 0o770, 0o702] {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        let state = tmp.path().join(".app.zipdeploy");
        fs::create_dir(&state).unwrap();
        chmod(&state, bad);
        let msg = deploy(&app_zip("1"), &dest).unwrap_err().to_string();
        assert!(msg.contains(&state.display().to_string()), "{msg}");
        assert!(msg.contains("writable by group or others"), "{msg}");
        assert!(msg.contains("chmod go-w"), "{msg}");
        assert_eq!(mode(&state), bad);
        assert!(names_in(&state).is_empty(), "nothing created inside");
        assert!(!dest.exists());
    }
}

#[test]
fn a_state_dir_is_created_private_and_a_symlinked_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy(&app_zip("1"), &dest).unwrap();
    assert_eq!(mode(&tmp.path().join(".app.zipdeploy")), 0o700);

    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o700);
    let other = tmp.path().join("other");
    symlink(&elsewhere, tmp.path().join(".other.zipdeploy")).unwrap();
    let msg = deploy(&app_zip("1"), &other).unwrap_err().to_string();
    assert!(msg.contains("symlink"), "{msg}");
    assert!(names_in(&elsewhere).is_empty());
}

#[test]
fn a_releases_symlink_is_not_followed_by_pruning() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), b"keep me").unwrap();
    fs::create_dir(victim.join("data")).unwrap();
    fs::write(victim.join("data/db"), b"keep me too").unwrap();
    let before = snapshot(&victim);

    deploy(&app_zip("1"), &dest).unwrap();
    let releases = tmp.path().join(".app.zipdeploy/releases");
    if releases.exists() {
        fs::remove_dir_all(&releases).unwrap();
    }
    symlink(&victim, &releases).unwrap();
    deploy(&app_zip("2"), &dest).unwrap();
    deploy(&app_zip("3"), &dest).unwrap();
    assert_eq!(version(&dest), "3");
    assert_eq!(
        snapshot(&victim),
        before,
        "pruning reached through the symlink"
    );
}

#[test]
fn a_current_new_symlink_is_replaced_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let victim = tmp.path().join("victim.conf");
    fs::write(&victim, b"precious").unwrap();
    deploy(&app_zip("1"), &dest).unwrap();
    let pkg = app_zip("2");
    let file = tmp.path().join("v2.zip");
    fs::write(&file, &pkg).unwrap();
    let state = tmp.path().join(".app.zipdeploy");
    let (planted_state, planted_victim) = (state.clone(), victim.clone());
    // Planted after recovery, just before the record is written.
    Deploy::new(file.to_str().unwrap())
        .unwrap()
        .dest(&dest)
        .before_activate(move |_| {
            symlink(&planted_victim, planted_state.join("current.new")).unwrap();
            Ok(())
        })
        .run()
        .unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(version(&dest), "2");
    let status = zipdeploy::status(&dest).unwrap();
    assert_eq!(status.current.unwrap().digest.to_hex(), sha(&pkg));
}

#[test]
fn a_dangling_lock_symlink_or_a_fifo_lock_is_replaced_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy(&app_zip("1"), &dest).unwrap();
    let guarded = tmp.path().join("root-only");
    fs::create_dir(&guarded).unwrap();
    chmod(&guarded, 0o700);
    let lock = tmp.path().join(".app.zipdeploy/lock");
    fs::remove_file(&lock).unwrap();
    symlink(guarded.join("created"), &lock).unwrap();
    let result = deploy(&app_zip("2"), &dest);
    assert!(names_in(&guarded).is_empty(), "created through the symlink");
    result.unwrap();
    assert_eq!(version(&dest), "2");
    assert!(fs::symlink_metadata(&lock).unwrap().is_file());

    // A FIFO there must not block the deploy (opening it to write would).
    fs::remove_file(&lock).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&lock)
        .status()
        .unwrap()
        .success());
    let (done, finished) = mpsc::channel();
    let dest2 = dest.clone();
    std::thread::spawn(move || {
        let _ = done.send(deploy(&app_zip("3"), &dest2).map(|r| r.digest));
    });
    let result = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the deploy blocked on a FIFO lock");
    assert_eq!(result.unwrap().to_hex(), sha(&app_zip("3")));
    assert!(fs::symlink_metadata(&lock).unwrap().is_file());
}

// ---------------------------------------------------------------------------
// Leftovers that are deep or cannot be removed
// ---------------------------------------------------------------------------

#[test]
fn a_deep_leftover_is_removed_under_a_small_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    deploy(&app_zip("1"), &dest).unwrap();
    // What a refused package streamed into staging: 1,500 levels.
    let leftover = tmp.path().join(".app.zipdeploy/staging-deep");
    let deep: PathBuf = std::iter::once(leftover.clone())
        .chain((0..1500).map(|_| PathBuf::from("d")))
        .collect();
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("file"), b"x").unwrap();

    let pkg = app_zip("2");
    let file = tmp.path().join("v2.zip");
    fs::write(&file, &pkg).unwrap();
    let result = run_child(
        &["sh", "-c", "ulimit -n 64 && exec \"$@\"", "sh"],
        file.to_str().unwrap(),
        &dest,
        &[],
    );
    assert_eq!(result, "OK []");
    assert!(!leftover.exists());
    assert_eq!(version(&dest), "2");
}

/// A DEST whose parent and state dir belong to uid 65534, with a leftover
/// that user cannot remove (a root-owned directory inside it), and a
/// package 65534 can read. Returns (dest, state dir, package).
fn stuck_leftover(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    chmod(tmp, 0o755);
    let parent = tmp.join("srv");
    fs::create_dir(&parent).unwrap();
    chown(&parent, NOBODY);
    let state = parent.join(".app.zipdeploy");
    fs::create_dir(&state).unwrap();
    chmod(&state, 0o700);
    chown(&state, NOBODY);
    let stuck = state.join("staging-stuck");
    fs::create_dir_all(stuck.join("root-owned")).unwrap();
    fs::write(stuck.join("root-owned/file"), b"x").unwrap();
    chown(&stuck, NOBODY);
    let pkg = tmp.join("v1.zip");
    fs::write(&pkg, app_zip("1")).unwrap();
    chmod(&pkg, 0o644);
    (parent.join("app"), state, pkg)
}

const AS_NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

#[test]
fn a_leftover_that_cannot_be_removed_never_blocks_a_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, state, pkg) = stuck_leftover(tmp.path());
    for _ in 0..2 {
        let result = run_child(&AS_NOBODY, pkg.to_str().unwrap(), &dest, &[]);
        assert!(result.starts_with("OK ["), "{result}");
        assert!(result.contains("could not remove leftover"), "{result}");
        assert_eq!(version(&dest), "1");
    }
    // Set aside under a trash name, tried again by every run.
    let names = names_in(&state);
    assert!(
        !names.iter().any(|n| n.starts_with("staging-")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("trash-")), "{names:?}");
}

#[test]
fn the_cli_reports_a_leftover_it_could_not_remove_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, _, pkg) = stuck_leftover(tmp.path());
    let out = Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .arg(cli_path())
        .args(["--json", "--url"])
        .arg(&pkg)
        .arg("--dest")
        .arg(&dest)
        .env_clear()
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("zipdeploy: warning: could not remove leftover"),
        "{stderr}"
    );
    assert!(
        stdout.contains("\"warnings\":[\"could not remove leftover"),
        "{stdout}"
    );
    assert_eq!(version(&dest), "1");
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

#[test]
fn a_cache_owned_by_another_user_or_open_to_others_is_refused() {
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    for hostile in ["owner", "mode"] {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        fs::create_dir(&cache).unwrap();
        if hostile == "owner" {
            chown(&cache, NOBODY);
        } else {
            chmod(&cache, 0o777);
        }
        let err = Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .cache(&cache)
            .dest(tmp.path().join("app"))
            .run()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&cache.display().to_string()), "{err}");
        assert!(names_in(&cache).is_empty(), "{hostile}: touched");
        assert!(!tmp.path().join("app").exists());
    }
}

/// Every deploy locks its digest's `<hex>.lock` in the cache; a digest that
/// never got an entry (a wrong digest, a failed download) must not leave
/// its lock file behind, or each such deploy adds one file for good.
#[test]
fn deploys_that_fail_leave_no_lock_files_in_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let pkg = app_zip("1");
    let file = tmp.path().join("app.zip");
    fs::write(&file, &pkg).unwrap();
    let server = TestServer::serving(pkg.clone());
    for n in 0..3u8 {
        let wrong = zipdeploy::Sha256Digest::of(&[n]).to_hex();
        for location in [server.url("/app.zip"), file.display().to_string()] {
            let err = Deploy::new(&location)
                .unwrap()
                .sha256(&wrong)
                .unwrap()
                .cache(&cache)
                .retries(0)
                .dest(tmp.path().join("app"))
                .run()
                .unwrap_err();
            assert!(err.to_string().contains("mismatch"), "{err}");
        }
    }
    assert!(names_in(&cache.join("sha256")).is_empty());
    // A digest that has an entry keeps its lock file with it.
    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .cache(&cache)
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    let hex = sha(&pkg);
    assert_eq!(
        names_in(&cache.join("sha256")),
        [format!("{hex}.lock"), format!("{hex}.zip")]
    );
}

#[test]
fn eviction_does_not_follow_a_sha256_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fs::create_dir(&cache).unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    for name in ["backup.zip", "photos.zip"] {
        let path = victim.join(name);
        fs::write(&path, vec![b'v'; 4096]).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    symlink(&victim, cache.join("sha256")).unwrap();
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let result = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .cache(&cache)
        .cache_max_size(1)
        .dest(tmp.path().join("app"))
        .run();
    assert_eq!(names_in(&victim), ["backup.zip", "photos.zip"]);
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("sha256") && msg.contains("symlink"), "{msg}");
}

#[test]
fn fifos_in_the_cache_never_block_a_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let entries = cache.join("sha256");
    fs::create_dir_all(&entries).unwrap();
    let signer = Signer::new();
    let pkg = app_zip("1");
    let hex = sha(&pkg);
    let server = TestServer::start({
        let (pkg, sig) = (pkg.clone(), signer.sign(&pkg));
        move |req, _| match req.path.as_str() {
            "/app.zip" => Reply::ok(pkg.clone()),
            _ => Reply::ok(sig.clone().into_bytes()),
        }
    });
    for name in [
        format!("{hex}.lock"),
        format!("{hex}.zip"),
        format!("{hex}.minisig"),
        ".tmp-crashed.zip".to_string(),
    ] {
        let status = Command::new("mkfifo")
            .arg(entries.join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (done, finished) = mpsc::channel();
    let (url, dest) = (server.url("/app.zip"), tmp.path().join("app"));
    let key = PublicKey::parse(&signer.public_base64()).unwrap();
    std::thread::spawn(move || {
        let result = Deploy::new(&url)
            .unwrap()
            .sha256(&hex)
            .unwrap()
            .minisign_key(key)
            .cache(&cache)
            .dest(&dest)
            .timeout(Duration::from_secs(5))
            .run()
            .map(|r| r.digest);
        let _ = done.send(result);
    });
    let result = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the deploy blocked on a FIFO in the cache");
    assert_eq!(result.unwrap().to_hex(), sha(&pkg));
    assert_eq!(version(&tmp.path().join("app")), "1");
}

#[test]
fn a_planted_signature_temp_symlink_is_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let entries = cache.join("sha256");
    fs::create_dir_all(&entries).unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let signer = Signer::new();
    let pkg = app_zip("1");
    let hex = sha(&pkg);
    // The name the signature's temp file used to have (`<pid>` is this
    // process: the deploy runs here).
    let planted = entries.join(format!("{hex}.minisig.tmp-{}", std::process::id()));
    symlink(&victim, &planted).unwrap();
    let server = TestServer::start({
        let (pkg, sig) = (pkg.clone(), signer.sign(&pkg));
        move |req, _| match req.path.as_str() {
            "/app.zip" => Reply::ok(pkg.clone()),
            _ => Reply::ok(sig.clone().into_bytes()),
        }
    });
    Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&hex)
        .unwrap()
        .minisign_key(PublicKey::parse(&signer.public_base64()).unwrap())
        .cache(&cache)
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(entries.join(format!("{hex}.minisig")).is_file());
}

#[test]
fn with_umask_000_nothing_is_created_writable_by_others() {
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("new/cache");
    let dest = tmp.path().join("srv/www/app");
    let result = run_child(
        &["sh", "-c", "umask 000 && exec \"$@\"", "sh"],
        &server.url("/app.zip"),
        &dest,
        &[
            ("ZIPDEPLOY_TRUST_CACHE", cache.to_str().unwrap()),
            ("ZIPDEPLOY_TRUST_SHA256", &sha(&pkg)),
        ],
    );
    assert_eq!(result, "OK []");
    let entry = cache.join("sha256").join(format!("{}.zip", sha(&pkg)));
    for path in [
        tmp.path().join("new"),
        cache.clone(),
        cache.join("sha256"),
        entry,
        tmp.path().join("srv"),
        tmp.path().join("srv/www"),
        tmp.path().join("srv/www/.app.zipdeploy"),
    ] {
        assert_eq!(
            mode(&path) & 0o022,
            0,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }
    assert_eq!(mode(&tmp.path().join("srv/www/.app.zipdeploy")), 0o700);
    for name in names_in(&cache.join("sha256")) {
        let path = cache.join("sha256").join(&name);
        assert_eq!(mode(&path) & 0o022, 0, "{name} is {:o}", mode(&path));
    }
}
