//! A local package is hashed on one thread while it is extracted on
//! others, from the one handle it was opened with; nothing is activated
//! before its digest is verified, and a package that is not the expected
//! one fails with that, whatever extraction made of it.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::raw::{raw_zip, RawEntry};
use common::*;
use zipdeploy::{Deploy, Error, ErrorClass, Progress, Stage};

/// 2,000 files of 16 KiB of noise (32 MiB): extraction reports progress
/// file by file, long before the last byte is hashed.
fn many_files(version: &str) -> Vec<u8> {
    let names: Vec<String> = (0..2000).map(|i| format!("data/{i:04}.bin")).collect();
    let bodies: Vec<Vec<u8>> = (0..2000).map(|i| noise(16 << 10, i + 1)).collect();
    let mut entries: Vec<Entry<'_>> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| Entry::File(n, b))
        .collect();
    entries.push(Entry::File("VERSION", version.as_bytes()));
    zip_of(&entries)
}

/// Writes `zip` beside `dest` as a package only this user can write.
fn local_package(dest: &Path, zip: &[u8]) -> PathBuf {
    let path = dest.parent().unwrap().join("pkg.zip");
    std::fs::write(&path, zip).unwrap();
    chmod(&path, 0o644);
    path
}

/// Deploys the local package `pkg` expecting `digest` (any, when empty),
/// recording every progress event, cancelling at the first for which
/// `cancel` holds.
fn deploy(
    pkg: &Path,
    digest: &str,
    dest: &Path,
    cancel: impl Fn(&Progress) -> bool + Send + 'static,
) -> (zipdeploy::Result<zipdeploy::Report>, Vec<Progress>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut deploy = Deploy::new(pkg.to_str().unwrap()).unwrap();
    if !digest.is_empty() {
        deploy = deploy.sha256(digest).unwrap();
    }
    let result = deploy
        .dest(dest)
        .progress(move |p| {
            seen.lock().unwrap().push(*p);
            match cancel(p) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        })
        .run();
    let events = events.lock().unwrap().clone();
    (result, events)
}

/// A fetch event telling entries already extracted before the last byte
/// was hashed.
fn extracted_while_hashing(p: &Progress) -> bool {
    p.stage == Stage::Fetch && p.entries > 0 && Some(p.bytes) < p.total_bytes
}

#[test]
fn a_local_package_is_extracted_while_it_is_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let zip = many_files("v1");
    let pkg = local_package(&dest, &zip);
    let (result, events) = deploy(&pkg, &sha(&zip), &dest, |_| false);
    let report = result.unwrap();
    assert_eq!(version(&dest), "v1");
    assert_eq!(report.digest.to_hex(), sha(&zip));
    assert_eq!(report.package_size, zip.len() as u64);
    assert!(
        events.iter().any(extracted_while_hashing),
        "no entry was extracted before the package was hashed: {:?}",
        &events[..events.len().min(5)]
    );
    // The fetch stage ends with the whole package, before activation.
    let whole = events
        .iter()
        .position(|p| p.stage == Stage::Fetch && p.bytes == zip.len() as u64)
        .expect("the fetch stage never told the whole package");
    let install = events.iter().position(|p| p.stage == Stage::Install);
    assert!(install.is_some_and(|i| i > whole), "{events:?}");
}

#[test]
fn a_local_package_that_is_not_the_expected_one_fails_with_its_digest_even_when_hostile() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v1"));
    // Another package (extraction stops once the digest is known), and one
    // that extraction alone refuses, maybe before the hash ends: the wrong
    // digest is the cause reported either way.
    let other = many_files("v2");
    let hostile = zip_of(&[
        Entry::File("ok.txt", b"fine"),
        Entry::File("../escaped.txt", b"out"),
    ]);
    for zip in [other, hostile] {
        let pkg = local_package(&dest, &zip);
        let (result, _) = deploy(&pkg, &sha(b"another package"), &dest, |_| false);
        std::fs::remove_file(&pkg).unwrap();
        let err = result.unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Digest);
        assert_untouched(&dest, &before);
        assert!(!tmp.path().join("escaped.txt").exists());
    }
}

#[test]
fn cancelling_while_a_local_package_is_hashed_and_extracted_leaves_dest_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v1"));
    let zip = many_files("v2");
    let pkg = local_package(&dest, &zip);
    let (result, events) = deploy(&pkg, &sha(&zip), &dest, extracted_while_hashing);
    std::fs::remove_file(&pkg).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err}");
    assert!(events.iter().any(extracted_while_hashing));
    assert_untouched(&dest, &before);
}

#[test]
fn a_local_package_that_is_not_the_expected_one_moves_on_to_a_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let wanted = app_zip("v2");
    let pkg = local_package(&dest, &app_zip("stale"));
    let mirror = TestServer::serving(wanted.clone());
    let report = Deploy::new(pkg.to_str().unwrap())
        .unwrap()
        .mirror(mirror.url("/app.zip").as_str())
        .unwrap()
        .sha256(&sha(&wanted))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(version(&dest), "v2");
    assert_eq!(
        report.mirrors_skipped.len(),
        1,
        "{:?}",
        report.mirrors_skipped
    );
    assert!(
        report.mirrors_skipped[0].contains("SHA-256 mismatch"),
        "{:?}",
        report.mirrors_skipped
    );
}

#[test]
fn every_local_deploy_tells_the_whole_fetch_then_extraction_then_install() {
    // Small packages: the hash and extraction's last event race each other.
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..30 {
        let dest = tmp.path().join(format!("app{round}"));
        let zip = app_zip(&format!("v{round}"));
        let pkg = tmp.path().join(format!("pkg{round}.zip"));
        std::fs::write(&pkg, &zip).unwrap();
        chmod(&pkg, 0o644);
        let (result, events) = deploy(&pkg, &sha(&zip), &dest, |_| false);
        result.unwrap();
        let stages: Vec<Stage> = events.iter().map(|p| p.stage).collect();
        let at = |stage: Stage| stages.iter().position(|s| *s == stage);
        let whole = events
            .iter()
            .position(|p| p.stage == Stage::Fetch && p.bytes == zip.len() as u64);
        let (extract, install) = (at(Stage::Extract), at(Stage::Install));
        assert!(
            whole.is_some() && extract > whole && install > extract,
            "round {round}: {events:?}"
        );
    }
}

/// A package of `hole` bytes of zeros (a sparse file: no disk used)
/// followed by `tail`, beside `dest`: hashing it takes a while, while
/// extraction only reads its end.
fn sparse_package(dest: &Path, hole: u64, tail: &[u8]) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    let path = dest.parent().unwrap().join("sparse.zip");
    let mut file = std::fs::File::create(&path).unwrap();
    file.set_len(hole).unwrap();
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(tail).unwrap();
    chmod(&path, 0o644);
    path
}

/// Bytes of zeros (a hole: no disk used) that take a debug build a few
/// heartbeats (100 ms each) to hash, however slowly a loaded machine
/// extracts the small ZIP after them (with 64 MiB, the full suite once saw
/// extraction end with the hash nearly done and no heartbeat between).
const SLOW_TO_HASH: u64 = 256 << 20;

#[test]
fn a_cancel_while_only_the_hash_is_left_takes_effect() {
    // Not a ZIP: extraction fails at once, the hash goes on (a wrong digest
    // would be the error). The deploy still tells how far the hash is, and
    // a cancel then stops it.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v1"));
    let pkg = sparse_package(&dest, SLOW_TO_HASH, b"not a zip");
    let (result, events) = deploy(&pkg, &sha(b"another package"), &dest, |p| {
        p.stage == Stage::Fetch && p.bytes > 0
    });
    std::fs::remove_file(&pkg).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err}; {events:?}");
    assert_untouched(&dest, &before);
    // The next deploy works.
    let zip = app_zip("v2");
    let pkg = local_package(&dest, &zip);
    deploy(&pkg, &sha(&zip), &dest, |_| false).0.unwrap();
    assert_eq!(version(&dest), "v2");
}

#[test]
fn a_local_package_extracted_before_it_is_hashed_tells_the_hash_going_on() {
    // A launcher's worth of zeros before a small ZIP: extraction reads the
    // end and is done long before the hash.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let zip = app_zip("v1");
    let pkg = sparse_package(&dest, SLOW_TO_HASH, &zip);
    let (result, events) = deploy(&pkg, "", &dest, |_| false);
    let report = result.unwrap();
    assert_eq!(version(&dest), "v1");
    // As while streaming, fetching lasts until the package is verified.
    let timings = report.timings;
    assert!(timings.fetch > timings.extract, "{timings:?}");
    // Once every entry is extracted, fetch events go on telling the bytes
    // hashed until the whole package is.
    let hashing: Vec<u64> = events
        .iter()
        .filter(|p| p.stage == Stage::Fetch && Some(p.entries) == p.total_entries)
        .filter(|p| Some(p.bytes) < p.total_bytes)
        .map(|p| p.bytes)
        .collect();
    assert!(hashing.len() > 1, "{events:?}");
}

#[test]
fn a_local_package_that_is_not_the_expected_one_is_not_extracted_in_full() {
    // One entry of 1 GiB of zeros in 1 MiB: its digest is known long
    // before extraction could write it all, and stops it mid-file.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v1"));
    let pkg = local_package(&dest, &raw_zip(&[RawEntry::zeros("zeros.bin", 1024)]));
    let started = std::time::Instant::now();
    let (result, _) = deploy(&pkg, &sha(b"another package"), &dest, |_| false);
    let took = started.elapsed();
    std::fs::remove_file(&pkg).unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_untouched(&dest, &before);
    // Writing it all takes seconds (5.9 s in a debug build when it was
    // extracted in full), hashing 1 MiB a few milliseconds.
    assert!(
        took < std::time::Duration::from_secs(1),
        "the wrong package took {took:?}"
    );
}

#[test]
fn a_cancel_in_the_middle_of_a_large_entry_takes_effect() {
    // The expected package, one entry of 256 MiB of zeros (its CRC wrong,
    // to be found only once it is all written, a second or more): progress
    // goes on within the entry, and a cancel stops it there.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v1"));
    let zip = raw_zip(&[RawEntry::zeros("zeros.bin", 256)]);
    let pkg = local_package(&dest, &zip);
    let started = std::time::Instant::now();
    // Any event after the first (nothing hashed, nothing extracted).
    let (result, events) = deploy(&pkg, &sha(&zip), &dest, |p| {
        p.stage != Stage::Fetch || p.bytes > 0 || p.entries > 0
    });
    let took = started.elapsed();
    std::fs::remove_file(&pkg).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err}; {events:?}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    assert_untouched(&dest, &before);
}

#[test]
fn a_cancel_at_any_event_leaves_dest_as_it_was() {
    // Every event of a deploy in turn cancels it: the deploy fails as
    // cancelled with DEST and the state dir as they were (the install's
    // event comes after activation and cannot cancel), and the next one
    // deploys.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    install_previous(&dest, &app_zip("v1"));
    // Written by the deploying thread alone (too few for helpers), which
    // tells each.
    let names: Vec<String> = (0..30).map(|i| format!("data/{i:02}.bin")).collect();
    let body = noise(16 << 10, 3);
    let mut entries: Vec<Entry<'_>> = names.iter().map(|n| Entry::File(n, &body)).collect();
    entries.push(Entry::File("VERSION", b"v2"));
    let zip = zip_of(&entries);
    let pkg = local_package(&dest, &zip);
    let before = Before::of(&dest);
    let mut at = 0;
    loop {
        let (result, events) = deploy(&pkg, &sha(&zip), &dest, {
            let seen = std::sync::atomic::AtomicUsize::new(0);
            move |_| seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == at
        });
        match result {
            Err(err) => {
                assert_eq!(err.class(), ErrorClass::Cancelled, "event {at}: {err}");
                assert_untouched(&dest, &before);
            }
            Ok(_) => {
                let told = events.get(at).map(|p| p.stage);
                assert!(
                    matches!(told, None | Some(Stage::Install)),
                    "event {at} ({told:?}) cancelled nothing"
                );
                assert_eq!(version(&dest), "v2");
                // One event a file at least.
                assert!(at > 30, "only {at} events");
                break;
            }
        }
        at += 1;
    }
    std::fs::remove_file(&pkg).unwrap();
}
