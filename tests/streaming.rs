//! Extraction while the package downloads: used where the layout allows,
//! skipped (and said so) where it does not, and never trusted without the
//! digest and the central directory.

mod common;

use std::time::Duration;

use common::raw::{RawEntry, RawZip};
use common::*;
use zipdeploy::{Deploy, Sha256Digest};

fn deploy_over_http(pkg: &[u8], stream: bool) -> (tempfile::TempDir, zipdeploy::Report) {
    let tmp = tempfile::tempdir().unwrap();
    let server = {
        let pkg = pkg.to_vec();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::Trickle(8 * 1024, Duration::from_millis(1)))
        })
    };
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(pkg).to_hex())
        .unwrap()
        .dest(tmp.path().join("app"))
        .stream(stream)
        .durable(false)
        .run()
        .unwrap();
    (tmp, report)
}

#[test]
fn ordinary_packages_extract_while_downloading() {
    let pkg = app_zip("streamed");
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(report.stream_fallback, None);
    assert_eq!(report.files, 4);
    let (plain, off) = deploy_over_http(&pkg, false);
    assert!(!off.streamed);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn modes_and_symlinks_come_from_the_central_directory() {
    let pkg = zip_of(&[
        Entry::FileMode("bin/run", b"#!/bin/sh\n", 0o750),
        Entry::FileMode("ro.txt", b"read only", 0o444),
        Entry::DirMode("private/", 0o700),
        Entry::File("private/key", b"k"),
        Entry::Symlink("latest", "bin/run"),
    ]);
    let (streamed, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    let (plain, _) = deploy_over_http(&pkg, false);
    let tree = snapshot(&streamed.path().join("app"));
    assert_eq!(tree, snapshot(&plain.path().join("app")));
    assert_eq!(tree[std::path::Path::new("bin/run")].1, 0o750);
    assert_eq!(tree[std::path::Path::new("latest")].0, 'l');
}

#[test]
fn data_descriptors_fall_back_to_extracting_after_the_download() {
    let mut z = RawZip::new();
    z.add(&RawEntry::deflated("VERSION", b"described").with_descriptor());
    z.add(&RawEntry::stored("b.txt", b"plain"));
    let pkg = z.finish();
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(!report.streamed);
    let why = report.stream_fallback.unwrap();
    assert!(why.contains("data descriptors"), "{why}");
    assert_eq!(read(tmp.path().join("app/VERSION")), b"described");
    assert_eq!(read(tmp.path().join("app/b.txt")), b"plain");
}

#[test]
fn bytes_before_the_first_entry_fall_back() {
    // A self-extracting stub in front of the archive.
    let mut pkg = b"#!/bin/sh\nexit 0\n".to_vec();
    let mut z = RawZip::new();
    z.add(&RawEntry::stored("VERSION", b"sfx"));
    let archive = z.finish();
    pkg.extend_from_slice(&archive);
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(pkg.clone());
    let result = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(tmp.path().join("app"))
        .run();
    // Installed from the complete file, or refused by name; never streamed.
    match result {
        Ok(report) => {
            assert!(!report.streamed);
            assert!(report.stream_fallback.unwrap().contains("no local header"));
            assert_eq!(read(tmp.path().join("app/VERSION")), b"sfx");
        }
        Err(e) => assert_eq!(e.class(), zipdeploy::ErrorClass::Archive, "{e}"),
    }
}

#[test]
fn a_restarted_download_falls_back_and_still_verifies() {
    let pkg = zip_of(&[
        Entry::File("VERSION", b"restarted"),
        Entry::File("big.txt", &b"0123456789abcdef".repeat(40_000)),
    ]);
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, n| {
            let reply = Reply::ok(pkg.clone());
            if n == 0 {
                reply.fault(Fault::CloseAfter(pkg.len() / 2))
            } else {
                reply
            }
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(&pkg).to_hex())
        .unwrap()
        .dest(tmp.path().join("app"))
        .retries(1)
        .run()
        .unwrap();
    assert!(!report.streamed);
    let why = report.stream_fallback.unwrap();
    assert!(why.contains("restarted"), "{why}");
    assert_eq!(read(tmp.path().join("app/VERSION")), b"restarted");
}
