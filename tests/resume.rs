//! Resume across runs: a download cut short is kept in the state directory
//! (`partial.zip` + `partial.state`) and the next deploy of the same
//! location and digest re-hashes it and fetches only the rest, with `Range`
//! and `If-Range`; a partial that no longer applies is removed.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use zipdeploy::{Deploy, ErrorClass, Sha256Digest};

/// A package of `size` bytes of noise, stored (so its size is the
/// download's), plus a VERSION file.
fn big_package(size: usize, seed: u64, version: &str) -> Vec<u8> {
    noise_package(&noise(size, seed), version)
}

/// What the server sent: per request, its status and body length.
type Served = Arc<Mutex<Vec<(u16, usize)>>>;

/// Serves `package()` (with its ETag) honouring `Range` / `If-Range`; the
/// first request is cut after `cut` body bytes. Logs what each reply sent.
fn serve_package(
    package: impl Fn() -> (Vec<u8>, String) + Send + Sync + 'static,
    cut: usize,
) -> (TestServer, Served) {
    let served: Served = Arc::default();
    let log = served.clone();
    let server = TestServer::start(move |req, n| {
        let (body, etag) = package();
        let mut reply = Reply::file_with_ranges(req, &body, &etag);
        let mut sent = reply.body.len();
        if n == 0 {
            reply = reply.fault(Fault::CloseAfter(cut));
            sent = cut;
        }
        log.lock().unwrap().push((reply.status, sent));
        reply
    });
    (server, served)
}

fn deploy(url: &str, dest: &Path, digest: &[u8]) -> zipdeploy::Result<zipdeploy::Report> {
    Deploy::new(url)?
        .sha256(&Sha256Digest::of(digest).to_hex())?
        .dest(dest)
        .retries(0)
        .run()
}

fn partial_files(dest: &Path) -> Vec<String> {
    let state = dest.parent().unwrap().join(".app.zipdeploy");
    names_in(&state)
        .into_iter()
        .filter(|n| n.starts_with("partial"))
        .collect()
}

#[test]
fn a_download_cut_short_is_resumed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(4 << 20, 7, "v1");
    let cut = package.len() * 9 / 10;
    let (server, served) = {
        let package = package.clone();
        serve_package(move || (package.clone(), "\"v1\"".into()), cut)
    };
    let url = server.url("/app.zip");

    let err = deploy(&url, &dest, &package).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Network, "{err}");
    assert!(!dest.exists());
    assert_eq!(partial_files(&dest), ["partial.state", "partial.zip"]);

    let report = deploy(&url, &dest, &package).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].header("range"), Some(&*format!("bytes={cut}-")));
    assert_eq!(requests[1].header("if-range"), Some("\"v1\""));
    assert_eq!(served.lock().unwrap()[1], (206, package.len() - cut));
    assert_eq!(report.bytes_downloaded, (package.len() - cut) as u64);
    assert_eq!(report.package_size, package.len() as u64);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(snapshot(&dest), reference(&package, tmp.path()));
    assert!(partial_files(&dest).is_empty(), "removed once used");
}

#[test]
fn a_complete_download_left_by_a_crash_is_checked_with_the_server_not_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(1 << 20, 7, "v1");
    let (server, served) = {
        let (package, cut) = (package.clone(), package.len() / 2);
        serve_package(move || (package.clone(), "\"v1\"".into()), cut)
    };
    let url = server.url("/app.zip");
    deploy(&url, &dest, &package).unwrap_err();
    // As if the run had received the rest, then died while extracting.
    let kept = tmp.path().join(".app.zipdeploy/partial.zip");
    let have = read(&kept).len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&kept)
        .unwrap();
    std::io::Write::write_all(&mut file, &package[have..]).unwrap();
    drop(file);

    let report = deploy(&url, &dest, &package).unwrap();
    let range = format!("bytes={}-", package.len());
    assert_eq!(server.requests()[1].header("range"), Some(range.as_str()));
    assert_eq!(served.lock().unwrap()[1].0, 416, "nothing left to send");
    assert_eq!(report.bytes_downloaded, 0);
    assert_eq!(read(dest.join("VERSION")), b"v1");
    assert!(partial_files(&dest).is_empty());
}

/// The tree `package` gives when installed from a local file.
fn reference(package: &[u8], tmp: &Path) -> Snapshot {
    let dir = tmp.join("reference");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("package.zip");
    std::fs::write(&file, package).unwrap();
    let dest = dir.join("app");
    Deploy::new(file.to_str().unwrap())
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    let tree = snapshot(&dest);
    std::fs::remove_dir_all(&dir).unwrap();
    tree
}

#[test]
fn a_package_changed_on_the_server_is_fetched_whole_and_replaces_the_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let old = big_package(1 << 20, 7, "v1");
    let new = big_package(1 << 20, 8, "v2");
    let changed = Arc::new(Mutex::new(false));
    let (server, served) = {
        let cut = old.len() / 2;
        let (old, new, changed) = (old.clone(), new.clone(), changed.clone());
        serve_package(
            move || match *changed.lock().unwrap() {
                false => (old.clone(), "\"v1\"".into()),
                true => (new.clone(), "\"v2\"".into()),
            },
            cut,
        )
    };
    let url = server.url("/app.zip");
    let run = || Deploy::new(&url).unwrap().dest(&dest).retries(0).run();
    run().unwrap_err();
    *changed.lock().unwrap() = true;

    let report = run().unwrap();
    let requests = server.requests();
    assert_eq!(requests[1].header("if-range"), Some("\"v1\""));
    assert_eq!(served.lock().unwrap()[1], (200, new.len()));
    assert_eq!(report.bytes_downloaded, new.len() as u64);
    assert_eq!(report.digest, Sha256Digest::of(&new));
    assert_eq!(snapshot(&dest), reference(&new, tmp.path()));
    assert!(partial_files(&dest).is_empty());
}

#[test]
fn a_partial_of_another_location_or_digest_is_not_resumed_and_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(1 << 20, 7, "v1");
    let (server, _) = {
        let (package, cut) = (package.clone(), package.len() / 2);
        serve_package(move || (package.clone(), "\"v1\"".into()), cut)
    };
    deploy(&server.url("/app.zip"), &dest, &package).unwrap_err();
    assert_eq!(partial_files(&dest).len(), 2);

    // Another digest expected: its own download, no Range.
    let err = deploy(&server.url("/app.zip"), &dest, b"another package").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Digest, "{err}");
    assert_eq!(server.requests()[1].header("range"), None);
    assert!(partial_files(&dest).is_empty(), "a complete download goes");

    // Cut short again, then another location: no Range either.
    let (cut_again, _) = {
        let (package, cut) = (package.clone(), package.len() / 2);
        serve_package(move || (package.clone(), "\"v1\"".into()), cut)
    };
    deploy(&cut_again.url("/app.zip"), &dest, &package).unwrap_err();
    assert_eq!(partial_files(&dest).len(), 2);
    deploy(&server.url("/app.zip?other"), &dest, &package).unwrap();
    assert_eq!(server.requests()[2].header("range"), None);
    assert!(partial_files(&dest).is_empty());
}

#[test]
fn bytes_that_no_longer_hash_to_the_package_fail_and_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(1 << 20, 7, "v1");
    let (server, _) = {
        let (package, cut) = (package.clone(), package.len() / 2);
        serve_package(move || (package.clone(), "\"v1\"".into()), cut)
    };
    let url = server.url("/app.zip");
    deploy(&url, &dest, &package).unwrap_err();
    // The kept bytes are damaged on disk: re-hashing them gives another
    // digest, which the deploy refuses, and the partial goes.
    let kept = tmp.path().join(".app.zipdeploy/partial.zip");
    let mut bytes = read(&kept);
    bytes[100] ^= 0xff;
    std::fs::write(&kept, bytes).unwrap();
    let err = deploy(&url, &dest, &package).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Digest, "{err}");
    assert!(server.requests()[1].header("range").is_some());
    assert!(partial_files(&dest).is_empty());
    assert!(!dest.exists());
    deploy(&url, &dest, &package).unwrap();
    assert_eq!(read(dest.join("VERSION")), b"v1");
}

#[test]
fn a_server_that_ignores_if_range_cannot_splice_two_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let old = big_package(1 << 20, 7, "v1");
    let new = big_package(1 << 20, 8, "v2");
    assert_eq!(old.len(), new.len());
    let server = {
        let (old, new) = (old.clone(), new.clone());
        TestServer::start(move |req, n| {
            if n == 0 {
                return Reply::file_with_ranges(req, &old, "\"v1\"")
                    .fault(Fault::CloseAfter(old.len() / 2));
            }
            // Honours Range, never If-Range.
            let mut req = req.clone();
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("if-range"));
            Reply::file_with_ranges(&req, &new, "\"v2\"")
        })
    };
    let run = |retries| {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .dest(&dest)
            .retries(retries)
            .run()
    };
    run(0).unwrap_err();
    let report = run(1).unwrap();
    assert_eq!(report.digest, Sha256Digest::of(&new));
    assert_eq!(read(dest.join("VERSION")), b"v2");
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[1].header("range").is_some());
    assert_eq!(requests[2].header("range"), None, "started over");
}

#[test]
fn a_cancelled_download_is_kept_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(2 << 20, 9, "v1");
    let server = {
        let package = package.clone();
        TestServer::start(move |req, _| {
            Reply::file_with_ranges(req, &package, "\"v1\"").fault(Fault::Trickle(
                64 * 1024,
                std::time::Duration::from_millis(2),
            ))
        })
    };
    let url = server.url("/app.zip");
    let half = package.len() as u64 / 2;
    let err = Deploy::new(&url)
        .unwrap()
        .dest(&dest)
        .progress(move |p| match p.bytes >= half {
            true => std::ops::ControlFlow::Break(()),
            false => std::ops::ControlFlow::Continue(()),
        })
        .run()
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err}");
    assert_eq!(partial_files(&dest), ["partial.state", "partial.zip"]);

    let report = Deploy::new(&url).unwrap().dest(&dest).run().unwrap();
    let range = server.requests()[1].header("range").map(str::to_string);
    assert!(range.is_some_and(|r| r != "bytes=0-"), "resumed");
    assert!(report.bytes_downloaded <= package.len() as u64 - half);
    assert_eq!(report.digest, Sha256Digest::of(&package));
    assert_eq!(read(dest.join("VERSION")), b"v1");
    assert!(partial_files(&dest).is_empty());
}

/// A server (or CDN) may answer `Range: bytes=N-` with less than the rest:
/// `206` with `Content-Range: bytes N-M/TOTAL`, M short of the end.
fn serve_capped_ranges(package: Vec<u8>, cut: usize, cap: usize) -> TestServer {
    TestServer::start(move |req, n| {
        let etag = "\"v1\"";
        if n == 0 {
            return Reply::file_with_ranges(req, &package, etag).fault(Fault::CloseAfter(cut));
        }
        let Some(range) = req.header("range") else {
            return Reply::file_with_ranges(req, &package, etag);
        };
        let (start, end) = range.trim_start_matches("bytes=").split_once('-').unwrap();
        let start: usize = start.parse().unwrap();
        let end = end.parse().unwrap_or(package.len() - 1);
        let end = end.min(start + cap - 1).min(package.len() - 1);
        let mut reply = Reply::ok(package[start..=end].to_vec())
            .header("Accept-Ranges", "bytes")
            .header("ETag", etag)
            .header(
                "Content-Range",
                &format!("bytes {start}-{end}/{}", package.len()),
            );
        reply.status = 206;
        reply
    })
}

#[test]
fn a_resume_answered_with_less_than_the_rest_goes_on_from_where_it_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let package = big_package(1 << 20, 7, "v1");
    let cut = package.len() / 2;
    let cap = package.len() / 4;
    let server = serve_capped_ranges(package.clone(), cut, cap);
    let url = server.url("/app.zip");
    deploy(&url, &dest, &package).unwrap_err();
    assert_eq!(partial_files(&dest), ["partial.state", "partial.zip"]);

    // The next run resumes at `cut` and gets `cap` bytes per answer: the
    // package is not over at the end of the first one.
    let report = Deploy::new(&url)
        .unwrap()
        .sha256(&Sha256Digest::of(&package).to_hex())
        .unwrap()
        .dest(&dest)
        .retries(3)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.package_size, package.len() as u64);
    assert_eq!(snapshot(&dest), reference(&package, tmp.path()));
}
