//! What is extracted is byte for byte what was verified: the package is
//! hashed, signature-checked and extracted through one open file, so a file
//! swapped (renamed over, or rewritten in place) between hashing and
//! extraction never reaches DEST. Each test makes the swap from the progress
//! callback, which runs in the deploying thread right after the last byte was
//! hashed: before extraction starts, or during it for a local package that
//! is hashed while it is extracted.

mod common;
use common::sha;

use std::fs;
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use common::signing::Signer;
use common::*;
use zipdeploy::signature::PublicKey;
use zipdeploy::{Deploy, Progress, Stage};

/// Whether this is the event for the package's last hashed byte.
fn last_fetch_event(p: &Progress) -> bool {
    p.stage == Stage::Fetch && p.total_bytes == Some(p.bytes) && p.bytes > 0
}

/// A progress callback that runs `swap` once, after the last byte was hashed.
fn swap_after_hashing<'a>(
    swapped: &'a AtomicBool,
    swap: impl Fn() + Send + 'a,
) -> impl FnMut(&Progress) -> ControlFlow<()> + Send + 'a {
    move |p: &Progress| {
        if last_fetch_event(p) && !swapped.swap(true, Ordering::SeqCst) {
            swap();
        }
        ControlFlow::Continue(())
    }
}

/// Writes `bytes` into the existing file at `path`, keeping its inode.
fn overwrite_in_place(path: &Path, bytes: &[u8]) {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn a_local_package_renamed_over_after_hashing_is_not_what_gets_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let verified = app_zip("verified");
    let package = tmp.path().join("app.zip");
    let intruder = tmp.path().join("intruder.zip");
    fs::write(&package, &verified).unwrap();
    chmod(&package, 0o644); // private: hashed in place, no copy
    fs::write(&intruder, app_zip("swapped")).unwrap();
    let dest = tmp.path().join("www");
    let swapped = AtomicBool::new(false);

    let report = Deploy::new(package.to_str().unwrap())
        .unwrap()
        .sha256(&sha(&verified))
        .unwrap()
        .dest(&dest)
        .progress(swap_after_hashing(&swapped, || {
            fs::rename(&intruder, &package).unwrap()
        }))
        .run()
        .unwrap();

    assert!(swapped.load(Ordering::SeqCst), "the swap never ran");
    assert_eq!(version(&dest), "verified");
    assert_eq!(report.digest.to_hex(), sha(&verified));
    assert_eq!(report.bytes_downloaded, 0);
}

#[test]
fn a_cache_entry_swapped_after_verification_is_not_installed_as_signed() {
    let signer = Signer::new();
    let verified = app_zip("verified");
    let server = TestServer::start({
        let (body, sig) = (verified.clone(), signer.sign(&verified).into_bytes());
        move |req, _| match req.path.as_str() {
            "/app.zip" => Reply::ok(body.clone()),
            "/app.zip.minisig" => Reply::ok(sig.clone()),
            _ => Reply::status(404),
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let key = || PublicKey::parse(&signer.public_base64()).unwrap();
    let deploy = |dest: &Path| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&verified))
            .unwrap()
            .minisign_key(key())
            .cache(&cache)
            .dest(dest)
    };
    deploy(&tmp.path().join("first")).run().unwrap();
    let entry = cache.join("sha256").join(format!("{}.zip", sha(&verified)));
    assert_eq!(read(&entry), verified);

    let intruder = tmp.path().join("intruder.zip");
    fs::write(&intruder, app_zip("unsigned")).unwrap();
    let dest = tmp.path().join("second");
    let swapped = AtomicBool::new(false);
    let report = deploy(&dest)
        .progress(swap_after_hashing(&swapped, || {
            fs::rename(&intruder, &entry).unwrap()
        }))
        .run()
        .unwrap();

    assert!(swapped.load(Ordering::SeqCst), "the swap never ran");
    assert!(report.cache_hit);
    assert_eq!(report.signed_by, Some(signer.key_id()));
    assert_eq!(
        version(&dest),
        "verified",
        "signed_by is only for verified bytes"
    );
    let status = zipdeploy::status(&dest).unwrap();
    let current = status.current.unwrap();
    assert_eq!(current.digest.to_hex(), sha(&verified));
    assert_eq!(current.signed_by, Some(signer.key_id()));
}

/// The download file (in the state dir, or the cache's temp file) renamed
/// over after the last byte was hashed, with and without streaming.
#[test]
fn a_download_file_swapped_after_hashing_is_not_what_gets_installed() {
    let verified = app_zip("verified");
    let server = TestServer::serving(verified.clone());
    let tmp = tempfile::tempdir().unwrap();
    let intruder_bytes = app_zip("swapped");
    let mut installed = Vec::new();
    for (run, (stream, cached)) in [(true, false), (false, false), (true, true), (false, true)]
        .into_iter()
        .enumerate()
    {
        let dest = tmp.path().join(format!("www{run}"));
        let state = tmp.path().join(format!(".www{run}.zipdeploy"));
        let cache = tmp.path().join(format!("cache{run}"));
        let intruder = tmp.path().join("intruder.zip");
        fs::write(&intruder, &intruder_bytes).unwrap();
        let swapped = AtomicBool::new(false);
        let download: Mutex<Option<PathBuf>> = Mutex::new(None);
        let swap = || {
            let dir = if cached {
                cache.join("sha256")
            } else {
                state.clone()
            };
            let name = fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.ends_with(".zip")
                        && (name.starts_with("download-")
                            || name.starts_with(".tmp-")
                            || name == "partial.zip")
                })
                .expect("the download file");
            fs::rename(&intruder, &name).unwrap();
            *download.lock().unwrap() = Some(name);
        };
        let mut deploy = Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&verified))
            .unwrap()
            .stream(stream)
            .dest(&dest)
            .progress(swap_after_hashing(&swapped, swap));
        if cached {
            deploy = deploy.cache(&cache);
        }
        let report = deploy.run().unwrap();
        let case = format!("stream {stream}, cache {cached}");
        assert!(swapped.load(Ordering::SeqCst), "{case}: the swap never ran");
        assert!(download.lock().unwrap().is_some(), "{case}");
        assert_eq!(report.digest.to_hex(), sha(&verified), "{case}");
        installed.push((case, version(&dest)));
    }
    assert!(
        installed.iter().all(|(_, v)| v == "verified"),
        "{installed:?}"
    );
}

/// A package file others can write could be rewritten in place (same inode)
/// between hashing and extraction: it is copied into private state first.
#[test]
fn a_local_package_others_can_write_is_copied_before_it_is_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let verified = app_zip("verified");
    // Shorter, so that hashing, already at the old end, reads none of it.
    let intruder = app_zip("x");
    assert!(intruder.len() < verified.len());
    let mut cases = vec![
        ("group-writable", 0o664, None),
        ("world-writable", 0o646, None),
    ];
    // A package owned by another user (who can always rewrite it) needs
    // root to make; the suite runs as root in CI.
    let euid = fs::metadata(tmp.path()).unwrap().uid();
    if euid == 0 {
        cases.push(("owned by another user", 0o644, Some(4321)));
    }
    let mut installed = Vec::new();
    for (run, (case, mode, owner)) in cases.into_iter().enumerate() {
        let package = tmp.path().join(format!("app{run}.zip"));
        fs::write(&package, &verified).unwrap();
        chmod(&package, mode);
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&package, Some(uid), None).unwrap();
        }
        let dest = tmp.path().join(format!("www{run}"));
        let swapped = AtomicBool::new(false);
        let report = Deploy::new(package.to_str().unwrap())
            .unwrap()
            .sha256(&sha(&verified))
            .unwrap()
            .dest(&dest)
            .progress(swap_after_hashing(&swapped, || {
                overwrite_in_place(&package, &intruder)
            }))
            .run()
            .unwrap();
        assert!(swapped.load(Ordering::SeqCst), "{case}: the swap never ran");
        assert_eq!(read(&package), intruder, "{case}: rewritten in place");
        installed.push((case, version(&dest)));
        assert_eq!(report.digest.to_hex(), sha(&verified), "{case}");
        assert_eq!(report.bytes_downloaded, 0, "{case}: a copy is no download");
        // The copy was a temp file of the state dir: nothing is left of it.
        let state = tmp.path().join(format!(".www{run}.zipdeploy"));
        let leftovers: Vec<String> = names_in(&state)
            .into_iter()
            .filter(|n| n.starts_with("download-"))
            .collect();
        assert!(leftovers.is_empty(), "{case}: {leftovers:?}");
    }
    assert!(
        installed.iter().all(|(_, v)| v == "verified"),
        "{installed:?}"
    );
}

/// The embedders' entry points still take paths.
#[test]
fn extract_archive_and_hash_local_still_take_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("app.zip");
    let bytes = app_zip("1");
    fs::write(&package, &bytes).unwrap();
    let hashed = zipdeploy::fetch::hash_local(&package, &Default::default(), None).unwrap();
    assert_eq!(hashed.digest.to_hex(), sha(&bytes));
    let out = tmp.path().join("out");
    let done =
        zipdeploy::extract::extract_archive(&package, &out, &Default::default(), None).unwrap();
    assert_eq!(done.files, 4);
    assert_eq!(version(&out), "1");
}

/// The signature beside a local package, in a directory another user can
/// write, is read through the one handle that was checked. Someone who
/// keeps renaming a FIFO and a valid signature over its name must not make
/// a deploy open the FIFO by name after the check and hang there (holding
/// DEST's lock, deaf to a cancel); with `/dev/zero` it would read without
/// end. The swaps race the deploys: each of many must end (20 s allowed).
#[test]
fn a_signature_swapped_for_a_fifo_never_hangs_a_deploy() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::mpsc;
    use std::time::Duration;

    let signer = Signer::new();
    let pkg = app_zip("1");
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).unwrap();
    let package = shared.join("app.zip");
    fs::write(&package, &pkg).unwrap();
    let signature = shared.join("app.zip.minisig");
    let good = signer.sign(&pkg);
    fs::write(&signature, &good).unwrap();
    let fifo = tmp.path().join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let (next, stop) = (shared.join("next"), AtomicBool::new(false));
    let mut hung = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match i % 2 {
                    0 => fs::hard_link(&fifo, &next).unwrap(),
                    _ => fs::write(&next, &good).unwrap(),
                }
                fs::rename(&next, &signature).unwrap();
            }
        });
        let dest = tmp.path().join("app");
        for attempt in 0..3000 {
            let (done, finished) = mpsc::channel();
            let key = PublicKey::parse(&signer.public_base64()).unwrap();
            let deploy = Deploy::new(package.to_str().unwrap())
                .unwrap()
                .minisign_key(key)
                .dest(&dest)
                .durable(false);
            s.spawn(move || done.send(deploy.run().is_ok()).unwrap());
            if finished.recv_timeout(Duration::from_secs(20)).is_err() {
                hung = Some(attempt);
                // Let it go: a writer on the FIFO ends its read.
                while finished.try_recv().is_err() {
                    let _ = fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                        .open(&fifo);
                    std::thread::sleep(Duration::from_millis(10));
                }
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(hung, None, "a deploy hung on a FIFO swapped in");
}
