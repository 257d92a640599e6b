//! Fleet features through the Rust API, against a real HTTP server on
//! 127.0.0.1: signed packages, digest sidecars, mirrors, the shared download
//! cache, status and rollback.

mod common;
use common::sha;

use std::fs;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::signing::Signer;
use common::*;
use zipdeploy::signature::PublicKey;
use zipdeploy::{Deploy, Error, ErrorClass};

/// Requests the server saw for `path`.
fn hits(server: &TestServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path.split('?').next() == Some(path))
        .count()
}

fn key(signer: &Signer) -> PublicKey {
    PublicKey::parse(&signer.public_base64()).unwrap()
}

// ---------------------------------------------------------------------------
// Signed packages
// ---------------------------------------------------------------------------

#[test]
fn a_signed_package_is_verified_and_the_key_recorded() {
    let signer = Signer::new();
    let pkg = app_zip("1");
    let server = site(vec![
        ("/app.zip", pkg.clone()),
        ("/app.zip.minisig", signer.sign(&pkg).into_bytes()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .minisign_key(key(&signer))
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.signed_by.as_deref(), Some(signer.key_id().as_str()));
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    assert_eq!(version(&dest), "1");
    let status = zipdeploy::status(&dest).unwrap();
    assert_eq!(
        status.current.unwrap().signed_by.as_deref(),
        Some(signer.key_id().as_str())
    );
    // The signature came first: a missing one costs no package download.
    let order: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(order, ["/app.zip.minisig", "/app.zip"]);

    // Again with the digest: a no-op without any request.
    let before = server.requests().len();
    let again = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .minisign_key(key(&signer))
        .dest(&dest)
        .run()
        .unwrap();
    assert!(again.noop);
    assert_eq!(server.requests().len(), before);
}

#[test]
fn a_bad_wrong_key_or_missing_signature_is_refused_and_dest_kept() {
    let signer = Signer::new();
    let other = Signer::new();
    let v1 = app_zip("1");
    let v2 = app_zip("2");
    let server = site(vec![
        ("/v1.zip", v1.clone()),
        ("/v1.zip.minisig", signer.sign(&v1).into_bytes()),
        // v2 carries the signature of v1: the bytes do not match.
        ("/v2.zip", v2.clone()),
        ("/v2.zip.minisig", signer.sign(&v1).into_bytes()),
        ("/other.zip", v2.clone()),
        ("/other.zip.minisig", other.sign(&v2).into_bytes()),
        ("/garbage.zip", v2.clone()),
        (
            "/garbage.zip.minisig",
            b"<html>not a signature</html>".to_vec(),
        ),
        ("/unsigned.zip", v2.clone()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let deploy = |path: &str| {
        Deploy::new(&server.url(path))
            .unwrap()
            .minisign_key(key(&signer))
            .dest(&dest)
            .run()
    };
    deploy("/v1.zip").unwrap();
    let before = snapshot(&dest);
    let id = signer.key_id();

    let err = deploy("/v2.zip").unwrap_err();
    assert_eq!(err.code(), 41, "{err}");
    assert_eq!(err.class(), ErrorClass::Digest);
    let message = err.to_string();
    assert!(message.contains(&id), "{message}");
    assert!(message.contains("does not match the package"), "{message}");
    assert_eq!(snapshot(&dest), before);

    let err = deploy("/other.zip").unwrap_err();
    assert_eq!(err.code(), 41, "{err}");
    assert!(err.to_string().contains("signed by another key"), "{err}");
    assert!(err.to_string().contains(&other.key_id()), "{err}");

    let err = deploy("/garbage.zip").unwrap_err();
    assert_eq!(err.code(), 41, "{err}");

    let err = deploy("/unsigned.zip").unwrap_err();
    assert!(matches!(err, Error::SignatureMissing { .. }), "{err}");
    assert_eq!(err.code(), 42);
    assert!(err.to_string().contains("HTTP status 404"), "{err}");
    assert_eq!(hits(&server, "/unsigned.zip"), 0, "package not fetched");
    assert_eq!(snapshot(&dest), before);
    assert_eq!(version(&dest), "1");
    assert_eq!(
        names_in(&tmp.path().join(".app.zipdeploy"))
            .iter()
            .filter(|n| n.starts_with("download-") || n.starts_with("staging-"))
            .count(),
        0
    );
}

#[test]
fn the_signature_follows_a_resumed_download() {
    let signer = Signer::new();
    let pkg = zip_of(&[Entry::File(
        "big.bin",
        &noise(300_000, 0x9E37_79B9_7F4A_7C15),
    )]);
    let sig = signer.sign(&pkg);
    let body = pkg.clone();
    // The first package request breaks off half-way; the retry resumes with
    // Range: the verifier sees each byte once, in order.
    let server = TestServer::start(move |req, _| {
        if req.path.ends_with(".minisig") {
            return Reply::ok(sig.clone());
        }
        let reply = Reply::file_with_ranges(req, &body, "\"e\"");
        if req.header("range").is_none() {
            reply.fault(Fault::CloseAfter(body.len() / 2))
        } else {
            reply
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .minisign_key(key(&signer))
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.signed_by, Some(signer.key_id()));
    assert_eq!(fs::read(dest.join("big.bin")).unwrap().len(), 300_000);
    let resumed = server
        .requests()
        .iter()
        .any(|r| r.header("range").is_some());
    assert!(resumed, "the download resumed");
}

#[test]
fn a_restarted_download_resets_the_signature_verifier() {
    let signer = Signer::new();
    let pkg = zip_of(&[Entry::File(
        "big.bin",
        &noise(200_000, 0x9E37_79B9_7F4A_7C15),
    )]);
    let sig = signer.sign(&pkg);
    let body = pkg.clone();
    // First attempt: garbage then a cut; then the real package (no ranges,
    // so the download restarts from zero).
    let server = TestServer::start(move |req, n| {
        if req.path.ends_with(".minisig") {
            return Reply::ok(sig.clone());
        }
        if n == 1 {
            Reply::ok(vec![0xAA; body.len()]).fault(Fault::CloseAfter(1000))
        } else {
            Reply::ok(body.clone())
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .minisign_key(key(&signer))
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.signed_by, Some(signer.key_id()));
    assert_eq!(hits(&server, "/app.zip"), 2);
}

#[test]
fn key_from_a_pub_file_and_signature_from_a_local_path() {
    let signer = Signer::new();
    let pkg = app_zip("1");
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("minisign.pub");
    fs::write(&key_file, signer.public_file()).unwrap();
    let sig_file = tmp.path().join("elsewhere.minisig");
    fs::write(&sig_file, signer.sign(&pkg)).unwrap();
    let server = site(vec![("/app.zip", pkg.clone())]);
    let dest = tmp.path().join("app");
    let key = PublicKey::from_arg(key_file.to_str().unwrap()).unwrap();
    assert_eq!(key.key_id(), signer.key_id());
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .minisign_key(key.clone())
        .minisign_signature(sig_file.to_str().unwrap())
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.signed_by, Some(signer.key_id()));

    // A local package takes the same path: its .minisig beside it.
    let local = tmp.path().join("pkg.zip");
    fs::write(&local, app_zip("2")).unwrap();
    let err = Deploy::new(local.to_str().unwrap())
        .unwrap()
        .minisign_key(key.clone())
        .dest(&dest)
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 42, "{err}");
    fs::write(
        tmp.path().join("pkg.zip.minisig"),
        signer.sign(&app_zip("2")),
    )
    .unwrap();
    Deploy::new(local.to_str().unwrap())
        .unwrap()
        .minisign_key(key)
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(version(&dest), "2");
}

// ---------------------------------------------------------------------------
// Digest sidecar
// ---------------------------------------------------------------------------

#[test]
fn the_digest_comes_from_a_sidecar() {
    let pkg = app_zip("1");
    let other = app_zip("2");
    let sidecar = format!("{}  other.zip\n{} *app.zip\n", sha(&other), sha(&pkg));
    let server = site(vec![
        ("/app.zip", pkg.clone()),
        ("/app.zip.sha256", sidecar.into_bytes()),
        ("/wrong.sha256", format!("{}\n", sha(&other)).into_bytes()),
        (
            "/ambiguous.sha256",
            format!("{}  app.zip\n{}  app.zip\n", sha(&pkg), sha(&other)).into_bytes(),
        ),
        ("/huge.sha256", vec![b'#'; 100 << 10]),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let deploy = |sidecar: &str| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256_from(&server.url(sidecar))
            .unwrap()
            .header("Authorization", "Bearer t0ken")
            .dest(&dest)
            .run()
    };
    let report = deploy("/app.zip.sha256").unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    let sidecar_request = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/app.zip.sha256")
        .unwrap();
    assert_eq!(
        sidecar_request.header("authorization"),
        Some("Bearer t0ken"),
        "same network options"
    );

    // Known digest: a no-op that fetches only the sidecar.
    let package_requests = hits(&server, "/app.zip");
    assert!(deploy("/app.zip.sha256").unwrap().noop);
    assert_eq!(hits(&server, "/app.zip"), package_requests);

    let before = snapshot(&dest);
    fs::remove_dir_all(&dest).unwrap();
    let err = deploy("/wrong.sha256").unwrap_err();
    assert_eq!(err.code(), 40, "{err}");
    let err = deploy("/ambiguous.sha256").unwrap_err();
    assert_eq!(err.code(), 43, "{err}");
    assert!(err.to_string().contains("ambiguous"), "{err}");
    let err = deploy("/huge.sha256").unwrap_err();
    assert_eq!(err.code(), 43, "{err}");
    assert!(err.to_string().contains("64 KiB"), "{err}");
    let err = deploy("/missing.sha256").unwrap_err();
    assert_eq!(err.code(), 30, "{err}");
    assert!(!dest.exists());
    deploy("/app.zip.sha256").unwrap();
    assert_eq!(snapshot(&dest), before);

    let both = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .sha256_from(&server.url("/app.zip.sha256"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert_eq!(both.code(), 22, "{both}");
}

// ---------------------------------------------------------------------------
// Mirrors
// ---------------------------------------------------------------------------

#[test]
fn mirrors_are_tried_in_order_until_one_serves_the_package() {
    let pkg = app_zip("1");
    let good = site(vec![("/app.zip", pkg.clone())]);
    let wrong = site(vec![("/app.zip", app_zip("evil"))]);
    let down = TestServer::start(|_, _| Reply::status(503));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let report = Deploy::new(&down.url("/app.zip"))
        .unwrap()
        .mirror(&wrong.url("/app.zip"))
        .unwrap()
        .mirror(&good.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .retries(1)
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.source, good.url("/app.zip"));
    assert_eq!(
        report.mirrors_skipped.len(),
        2,
        "{:?}",
        report.mirrors_skipped
    );
    assert!(report.mirrors_skipped[0].contains("HTTP status 503"));
    assert!(report.mirrors_skipped[1].contains("SHA-256 mismatch"));
    assert_eq!(down.requests().len(), 2, "the retry policy per mirror");
    assert_eq!(version(&dest), "1");
    assert_eq!(
        zipdeploy::status(&dest).unwrap().current.unwrap().source,
        good.url("/app.zip")
    );
}

#[test]
fn when_every_mirror_fails_the_error_names_each_redacted() {
    let wrong = site(vec![("/app.zip", app_zip("evil"))]);
    let missing = site(vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep"), b"old").unwrap();
    let before = snapshot(&dest);
    let secret_url = missing
        .url("/app.zip?token=s3cr3tvalue")
        .replace("http://", "http://deploy:hunter22@");
    let err = Deploy::new(&secret_url)
        .unwrap()
        .mirror(&wrong.url("/app.zip"))
        .unwrap()
        .sha256(&"ab".repeat(32))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::MirrorsFailed { .. }), "{err}");
    assert_eq!(err.code(), 36);
    assert_eq!(err.class(), ErrorClass::Network);
    let message = err.to_string();
    assert!(
        message.starts_with("all 2 package locations failed"),
        "{message}"
    );
    assert!(message.contains("HTTP status 404"), "{message}");
    assert!(message.contains("SHA-256 mismatch"), "{message}");
    assert!(
        !message.contains("hunter22") && !message.contains("s3cr3tvalue"),
        "{message}"
    );
    assert_eq!(snapshot(&dest), before);

    // A cancel is not a mirror's fault: it stops at once.
    let good = site(vec![("/app.zip", app_zip("1"))]);
    let err = Deploy::new(&wrong.url("/app.zip"))
        .unwrap()
        .mirror(&good.url("/app.zip"))
        .unwrap()
        .progress(|_| std::ops::ControlFlow::Break(()))
        .dest(&dest)
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 90, "{err}");
    assert!(good.requests().is_empty());
}

#[test]
fn a_mirror_with_a_bad_signature_is_skipped() {
    let signer = Signer::new();
    let pkg = app_zip("1");
    let evil = app_zip("evil");
    let bad = site(vec![
        ("/app.zip", evil.clone()),
        ("/app.zip.minisig", signer.sign(&pkg).into_bytes()),
    ]);
    let good = site(vec![
        ("/app.zip", pkg.clone()),
        ("/app.zip.minisig", signer.sign(&pkg).into_bytes()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let report = Deploy::new(&bad.url("/app.zip"))
        .unwrap()
        .mirror(&good.url("/app.zip"))
        .unwrap()
        .minisign_key(key(&signer))
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    assert!(report.mirrors_skipped[0].contains("minisign signature"));
    assert_eq!(version(&dest), "1");
}

// ---------------------------------------------------------------------------
// Cache
// ---------------------------------------------------------------------------

#[test]
fn the_cache_serves_a_digest_without_any_request_and_reverifies_it() {
    let pkg = app_zip("1");
    let server = site(vec![("/app.zip", pkg.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let deploy = |dest: &str| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .cache(&cache)
            .dest(tmp.path().join(dest))
            .run()
            .unwrap()
    };
    let first = deploy("a");
    assert!(!first.cache_hit);
    assert_eq!(first.bytes_downloaded, pkg.len() as u64);
    let entry = cache.join("sha256").join(format!("{}.zip", sha(&pkg)));
    assert_eq!(fs::read(&entry).unwrap(), pkg);
    assert_eq!(server.requests().len(), 1);

    let second = deploy("b");
    assert!(second.cache_hit);
    assert_eq!(second.bytes_downloaded, 0);
    assert_eq!(server.requests().len(), 1, "no request at all");
    assert_eq!(
        snapshot(&tmp.path().join("b")),
        snapshot(&tmp.path().join("a"))
    );

    // A corrupt entry is detected by its digest and fetched again.
    let mut corrupt = pkg.clone();
    corrupt[40] ^= 0xff;
    fs::write(&entry, &corrupt).unwrap();
    let third = deploy("c");
    assert!(!third.cache_hit);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(fs::read(&entry).unwrap(), pkg);
    assert_eq!(
        snapshot(&tmp.path().join("c")),
        snapshot(&tmp.path().join("a"))
    );
    let names = names_in(&cache.join("sha256"));
    assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{names:?}");
    // Nothing beside the DESTs, their state dirs and the cache.
    assert_eq!(
        names_in(tmp.path()),
        [
            ".a.zipdeploy",
            ".b.zipdeploy",
            ".c.zipdeploy",
            "a",
            "b",
            "c",
            "cache"
        ]
    );
}

#[test]
fn a_wrong_download_never_enters_the_cache() {
    let server = site(vec![("/app.zip", app_zip("evil"))]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&"cd".repeat(32))
        .unwrap()
        .cache(&cache)
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 40);
    let zips: Vec<String> = names_in(&cache.join("sha256"))
        .into_iter()
        .filter(|n| n.ends_with(".zip"))
        .collect();
    assert!(zips.is_empty(), "{zips:?}");
}

#[test]
fn concurrent_deploys_of_one_digest_download_it_once() {
    let pkg = zip_of(&[Entry::File(
        "data.bin",
        &noise(400_000, 0x9E37_79B9_7F4A_7C15),
    )]);
    let body = pkg.clone();
    let server = Arc::new(TestServer::start(move |_, _| {
        Reply::ok(body.clone()).fault(Fault::Trickle(64 << 10, Duration::from_millis(20)))
    }));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (server, barrier, cache) = (server.clone(), barrier.clone(), cache.clone());
            let dest = tmp.path().join(format!("app{i}"));
            let digest = sha(&pkg);
            std::thread::spawn(move || {
                barrier.wait();
                Deploy::new(&server.url("/app.zip"))
                    .unwrap()
                    .sha256(&digest)
                    .unwrap()
                    .cache(&cache)
                    .dest(&dest)
                    .durable(false)
                    .run()
                    .unwrap()
            })
        })
        .collect();
    let reports: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(server.requests().len(), 1, "downloaded once");
    assert_eq!(reports.iter().filter(|r| r.cache_hit).count(), 3);
    for i in 0..4 {
        let data = fs::read(tmp.path().join(format!("app{i}/data.bin"))).unwrap();
        assert_eq!(data.len(), 400_000);
    }
}

#[test]
fn the_cache_is_bounded_and_works_without_a_known_digest() {
    let packages: Vec<Vec<u8>> = (0..3)
        .map(|i| zip_of(&[Entry::File("f", &vec![i as u8 + 1; 50_000])]))
        .collect();
    let served = packages.clone();
    let server = TestServer::start(move |req, _| {
        let i: usize = req.path[1..2].parse().unwrap();
        Reply::ok(served[i].clone())
    });
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let limit = packages[0].len() as u64 * 2 + 10;
    for (i, pkg) in packages.iter().enumerate() {
        // No expected digest: cached under the digest seen.
        let report = Deploy::new(&server.url(&format!("/{i}.zip")))
            .unwrap()
            .cache(&cache)
            .cache_max_size(limit)
            .dest(tmp.path().join("app"))
            .run()
            .unwrap();
        assert_eq!(report.digest.to_hex(), sha(pkg));
        std::thread::sleep(Duration::from_millis(20));
    }
    let zips: Vec<String> = names_in(&cache.join("sha256"))
        .into_iter()
        .filter(|n| n.ends_with(".zip"))
        .collect();
    assert_eq!(
        zips,
        {
            let mut v = vec![
                format!("{}.zip", sha(&packages[1])),
                format!("{}.zip", sha(&packages[2])),
            ];
            v.sort();
            v
        },
        "the least recently used entry was evicted"
    );
}

#[test]
fn a_cached_signed_package_needs_no_request_and_is_still_checked() {
    let signer = Signer::new();
    let pkg = app_zip("1");
    let server = site(vec![
        ("/app.zip", pkg.clone()),
        ("/app.zip.minisig", signer.sign(&pkg).into_bytes()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let deploy = |dest: &str, signer: &Signer| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .minisign_key(key(signer))
            .cache(&cache)
            .dest(tmp.path().join(dest))
            .run()
    };
    deploy("a", &signer).unwrap();
    assert_eq!(server.requests().len(), 2);
    let hit = deploy("b", &signer).unwrap();
    assert!(hit.cache_hit);
    assert_eq!(hit.signed_by, Some(signer.key_id()));
    assert_eq!(server.requests().len(), 2, "the signature was kept too");
    // Another key: the kept signature is not its, the served one neither.
    let other = Signer::new();
    let err = deploy("c", &other).unwrap_err();
    assert_eq!(err.code(), 41, "{err}");
    assert!(!tmp.path().join("c").exists());
}

// ---------------------------------------------------------------------------
// Status and rollback
// ---------------------------------------------------------------------------

#[test]
fn status_reports_the_installed_package_and_the_kept_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let status = zipdeploy::status(&dest).unwrap();
    assert_eq!(status.current, None);
    assert!(status.kept.is_empty());
    assert!(
        !tmp.path().join(".app.zipdeploy").exists(),
        "status writes nothing"
    );

    let v1 = app_zip("1");
    let v2 = app_zip("2");
    let server = site(vec![("/v1.zip", v1.clone()), ("/v2.zip", v2.clone())]);
    let url = server.url("/v1.zip").replace("http://", "http://u:pw@");
    Deploy::new(&url).unwrap().dest(&dest).run().unwrap();
    Deploy::new(&server.url("/v2.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    let status = zipdeploy::status(&dest).unwrap();
    let current = status.current.unwrap();
    assert_eq!(current.digest.to_hex(), sha(&v2));
    assert_eq!(current.package_size, v2.len() as u64);
    assert_eq!(current.source, server.url("/v2.zip"));
    assert!(current.installed_at > 1_600_000_000);
    assert_eq!(status.kept.len(), 1);
    let kept = status.kept[0].installed.as_ref().unwrap();
    assert_eq!(kept.digest.to_hex(), sha(&v1));
    assert!(!kept.source.contains("pw"), "{}", kept.source);
}

#[test]
fn rollback_swaps_the_previous_release_back_and_twice_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let err = zipdeploy::rollback(&dest).unwrap_err();
    assert_eq!(err.code(), 72, "{err}");
    assert!(matches!(err, Error::NoRelease { .. }));

    let server = site(vec![
        ("/v1.zip", app_zip("1")),
        ("/v2.zip", app_zip("2")),
        ("/v3.zip", app_zip("3")),
    ]);
    let deploy = |v: u8, keep: usize| {
        Deploy::new(&server.url(&format!("/v{v}.zip")))
            .unwrap()
            .keep(keep)
            .dest(&dest)
            .run()
            .unwrap()
    };
    deploy(1, 1);
    let err = zipdeploy::rollback(&dest).unwrap_err();
    assert_eq!(err.code(), 72, "nothing kept after a first deploy");
    assert_eq!(version(&dest), "1");

    deploy(2, 1);
    let tree2 = snapshot(&dest);
    let back = zipdeploy::rollback(&dest).unwrap();
    assert_eq!(version(&dest), "1");
    assert_eq!(back.previous.unwrap().digest.to_hex(), sha(&app_zip("2")));
    assert_eq!(
        back.status.current.unwrap().digest.to_hex(),
        sha(&app_zip("1"))
    );
    assert_eq!(back.status.kept.len(), 1);
    // The redeploy of v1 is now a no-op: the record follows the rollback.
    let noop = Deploy::new(&server.url("/v1.zip"))
        .unwrap()
        .sha256(&sha(&app_zip("1")))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert!(noop.noop);
    zipdeploy::rollback(&dest).unwrap();
    assert_eq!(snapshot(&dest), tree2, "rolling back twice returns");
    assert_eq!(
        zipdeploy::status(&dest)
            .unwrap()
            .current
            .unwrap()
            .digest
            .to_hex(),
        sha(&app_zip("2"))
    );

    // keep 2: v1 and v2 kept behind v3; a rollback brings v2, keeps v1, v3.
    deploy(3, 2);
    let status = zipdeploy::status(&dest).unwrap();
    let kept: Vec<String> = status
        .kept
        .iter()
        .map(|r| r.installed.as_ref().unwrap().digest.to_hex())
        .collect();
    assert_eq!(kept, [sha(&app_zip("1")), sha(&app_zip("2"))]);
    zipdeploy::rollback(&dest).unwrap();
    assert_eq!(version(&dest), "2");
    let kept: Vec<String> = zipdeploy::status(&dest)
        .unwrap()
        .kept
        .iter()
        .map(|r| r.installed.as_ref().unwrap().digest.to_hex())
        .collect();
    assert_eq!(kept, [sha(&app_zip("1")), sha(&app_zip("3"))]);

    // keep 0: the activation removes every kept release, after it succeeds.
    deploy(1, 0);
    assert!(zipdeploy::status(&dest).unwrap().kept.is_empty());
    assert_eq!(zipdeploy::rollback(&dest).unwrap_err().code(), 72);
    assert_eq!(version(&dest), "1");
}

#[test]
fn rollback_to_a_tree_that_predates_zipdeploy() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("manual.txt"), b"by hand").unwrap();
    let manual = snapshot(&dest);
    let server = site(vec![("/v1.zip", app_zip("1"))]);
    Deploy::new(&server.url("/v1.zip"))
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    let status = zipdeploy::status(&dest).unwrap();
    assert_eq!(status.kept.len(), 1);
    assert_eq!(status.kept[0].installed, None);
    let back = zipdeploy::rollback(&dest).unwrap();
    assert_eq!(snapshot(&dest), manual);
    assert_eq!(back.status.current, None);
    zipdeploy::rollback(&dest).unwrap();
    assert_eq!(version(&dest), "1");
    assert!(zipdeploy::status(&dest).unwrap().current.is_some());
}

#[test]
fn rollback_durable_rolls_back_as_rollback_does_and_back_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let server = site(vec![("/v1.zip", app_zip("1")), ("/v2.zip", app_zip("2"))]);
    for v in ["1", "2"] {
        Deploy::new(&server.url(&format!("/v{v}.zip")))
            .unwrap()
            .dest(&dest)
            .run()
            .unwrap();
    }
    let back = zipdeploy::rollback_durable(&dest).unwrap();
    assert_eq!(version(&dest), "1");
    assert_eq!(back.previous.unwrap().digest.to_hex(), sha(&app_zip("2")));
    let forth = zipdeploy::rollback(&dest).unwrap();
    assert_eq!(version(&dest), "2");
    assert_eq!(forth.status.kept.len(), 1);
}
