//! Parallel ranged download: a download slowed by a per-connection cap
//! spreads its rest over several connections (`Range` + `If-Range`), and
//! every guarantee of one connection stands — the exact bytes and digest,
//! never two versions mixed, a failed range retried alone, servers without
//! ranges, the size limit, cancelling, resuming a kept partial.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::fetch::{fetch_to_file, FetchOptions};
use zipdeploy::{Deploy, ErrorClass, Sha256Digest, Source};

/// A stored package: `data/noise.bin` (`size` bytes of noise) and
/// `VERSION`.
struct Package {
    zip: Vec<u8>,
    noise: Vec<u8>,
    version: String,
}

fn package(size: usize, seed: u64, version: &str) -> Package {
    let noise = noise(size, seed);
    Package {
        zip: noise_package(&noise, version),
        noise,
        version: version.into(),
    }
}

/// 6 MiB: about 2 s on one capped connection.
fn six_mib(version: &str) -> Package {
    package(6 << 20, 7, version)
}

/// A server's cap on each connection: about 3 MB/s.
fn capped(reply: Reply) -> Reply {
    reply.fault(Fault::Trickle(64 * 1024, Duration::from_millis(20)))
}

/// A parsed `Range: bytes=A-B` (B inclusive) or `bytes=A-`.
fn range_of(req: &Request) -> Option<(usize, Option<usize>)> {
    let spec = req.header("range")?.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()))
}

/// Serves `body` as a static file server does: `Range` (closed or open),
/// `If-Range` against `etag`.
fn ranged_reply(req: &Request, body: &[u8], etag: &str) -> Reply {
    let base = Reply::ok(body.to_vec())
        .header("Accept-Ranges", "bytes")
        .header("ETag", etag);
    let Some((start, last)) = range_of(req) else {
        return base;
    };
    if req.header("if-range").is_some_and(|v| v != etag) {
        return base;
    }
    if start >= body.len() {
        return Reply::status(416).header("Content-Range", &format!("bytes */{}", body.len()));
    }
    let last = last.unwrap_or(body.len() - 1).min(body.len() - 1);
    let mut reply = Reply::ok(body[start..=last].to_vec())
        .header("Accept-Ranges", "bytes")
        .header("ETag", etag)
        .header(
            "Content-Range",
            &format!("bytes {start}-{last}/{}", body.len()),
        );
    reply.status = 206;
    reply
}

/// A server of `package` (ETag "v1") that honours ranges and caps each
/// connection's speed.
fn capped_server(package: &Package) -> TestServer {
    let zip = package.zip.clone();
    TestServer::start(move |req, _| capped(ranged_reply(req, &zip, "\"v1\"")))
}

/// [`capped_server`], except that its answer to request number `request`
/// (0 is the first) misbehaves with `fault`, uncapped.
fn capped_server_faulting(package: &Package, request: usize, fault: Fault) -> TestServer {
    let zip = package.zip.clone();
    TestServer::start(move |req, n| {
        let reply = ranged_reply(req, &zip, "\"v1\"");
        match n == request {
            true => reply.fault(fault),
            false => capped(reply),
        }
    })
}

/// No two of the ranges asked for (given by their first bytes) start at the
/// same byte: nothing was asked for again from where it was before.
fn assert_no_byte_asked_from_twice(starts: impl IntoIterator<Item = usize>) {
    let asked: Vec<usize> = starts.into_iter().collect();
    let mut once = asked.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), asked.len(), "{asked:?}");
}

/// The requests that asked for a closed range `bytes=A-B`: the parts.
fn parts_asked(server: &TestServer) -> Vec<(usize, usize)> {
    server
        .requests()
        .iter()
        .filter_map(range_of)
        .filter_map(|(a, b)| Some((a, b?)))
        .collect()
}

/// A deploy of `url` that expects `package`'s digest.
fn pinned<'a>(url: &str, package: &Package) -> Deploy<'a> {
    Deploy::new(url)
        .unwrap()
        .sha256(&sha(&package.zip))
        .unwrap()
}

fn assert_installed(dest: &Path, package: &Package) {
    assert_eq!(
        read(dest.join("data/noise.bin")),
        package.noise,
        "noise.bin"
    );
    assert_eq!(read(dest.join("VERSION")), package.version.as_bytes());
}

fn state_dir(dest: &Path) -> std::path::PathBuf {
    dest.parent().unwrap().join(".app.zipdeploy")
}

/// Deploys `package` from `server` (one retry allowed) into a new DEST in
/// `tmp`, and checks that no part held it up: done `within`, spread, no
/// part asked for again (the first connection brought what a part's
/// helper did not).
fn assert_the_first_connection_went_on(
    tmp: &tempfile::TempDir,
    server: &TestServer,
    package: &Package,
    within: Duration,
) {
    let dest = tmp.path().join("app");
    let started = Instant::now();
    pinned(&server.url("/app.zip"), package)
        .dest(&dest)
        .retries(1)
        .run()
        .unwrap();
    let took = started.elapsed();
    assert_installed(&dest, package);
    let parts = parts_asked(server);
    assert!(!parts.is_empty(), "the rest was not spread");
    assert!(took < within, "took {took:?}");
    assert_no_byte_asked_from_twice(parts.iter().map(|p| p.0));
    assert_eq!(server.requests().len(), 1 + parts.len());
}

/// What a spread download cut short keeps is a prefix of `package`,
/// described for a resume, which the next run resumes from its end.
fn assert_the_next_run_resumes_the_kept_prefix(
    server: &TestServer,
    url: &str,
    dest: &Path,
    package: &Package,
) {
    let kept = read(state_dir(dest).join("partial.zip"));
    assert!(state_dir(dest).join("partial.state").exists());
    assert!(!kept.is_empty() && kept.len() < package.zip.len());
    assert_eq!(kept, package.zip[..kept.len()]);
    let before = server.requests().len();
    pinned(url, package).dest(dest).run().unwrap();
    assert_installed(dest, package);
    let resumed = &server.requests()[before];
    assert_eq!(range_of(resumed), Some((kept.len(), None)), "{resumed:?}");
}

#[test]
fn a_capped_download_is_fetched_over_several_connections_with_the_exact_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    let server = capped_server(&v1);
    let url = server.url("/app.zip");

    // The fetch stage alone: the file holds the exact bytes, and the
    // digest is theirs.
    let out = tmp.path().join("out.zip");
    let options = FetchOptions {
        connections: 4,
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let fetched = fetch_to_file(&Source::parse(&url).unwrap(), &out, &options, None).unwrap();
    let spread = started.elapsed();
    assert_eq!(read(&out), v1.zip);
    assert_eq!(fetched.digest, Sha256Digest::of(&v1.zip));
    assert_eq!(fetched.bytes, v1.zip.len() as u64);
    let parts = parts_asked(&server);
    assert!(parts.len() >= 2, "the rest was not spread: {parts:?}");
    let requests = server.requests();
    assert!(requests[0].header("range").is_none());
    for req in &requests[1..] {
        assert_eq!(req.header("if-range"), Some("\"v1\""), "{req:?}");
    }
    // The parts tile the tail exactly, up to the last byte.
    let mut sorted = parts.clone();
    sorted.sort();
    assert!(
        sorted.windows(2).all(|w| w[0].1 + 1 == w[1].0),
        "{sorted:?}"
    );
    assert_eq!(sorted.last().unwrap().1, v1.zip.len() - 1);

    // A deploy streams and installs it; every connection carries the
    // header given for the package's origin.
    let dest = tmp.path().join("app");
    let first = server.requests().len();
    let report = pinned(&url, &v1)
        .dest(&dest)
        .header("X-Token", "t0ken")
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    let deploy_requests = &server.requests()[first..];
    assert!(deploy_requests.len() > 2, "{deploy_requests:?}");
    for req in deploy_requests {
        assert_eq!(req.header("x-token"), Some("t0ken"), "{req:?}");
    }
    assert_eq!(report.bytes_downloaded, v1.zip.len() as u64);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert!(names_in(&state_dir(&dest))
        .iter()
        .all(|n| !n.starts_with("partial")));

    // One connection when asked: a single request, and slower.
    let before = server.requests().len();
    let started = Instant::now();
    let single = FetchOptions {
        connections: 1,
        ..FetchOptions::default()
    };
    fetch_to_file(&Source::parse(&url).unwrap(), &out, &single, None).unwrap();
    let alone = started.elapsed();
    assert_eq!(read(&out), v1.zip);
    assert_eq!(server.requests().len(), before + 1);
    assert!(
        spread < alone,
        "spread {spread:?}, one connection {alone:?}"
    );
}

#[test]
fn a_package_that_changes_between_ranges_is_never_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    let v2 = package(6 << 20, 99, "v2");
    // v1 is replaced by v2 right after the first request; this server
    // even ignores If-Range (it answers ranges of v2 with 206).
    let server = {
        let (one, two) = (v1.zip.clone(), v2.zip.clone());
        TestServer::start(move |req, n| {
            let mut req = req.clone();
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("if-range"));
            match n {
                0 => capped(ranged_reply(&req, &one, "\"v1\"")),
                _ => capped(ranged_reply(&req, &two, "\"v2\"")),
            }
        })
    };
    let dest = tmp.path().join("app");
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(&dest)
        .retries(2)
        .run()
        .unwrap();
    assert!(!parts_asked(&server).is_empty(), "the rest was not spread");
    // One version, whole: v1 (its connection went on alone) or v2 (the
    // download started over), never bytes of both.
    let installed = if report.digest == Sha256Digest::of(&v1.zip) {
        &v1
    } else {
        &v2
    };
    assert_eq!(report.digest, Sha256Digest::of(&installed.zip));
    assert_installed(&dest, installed);

    // With the digest of v1 expected, v1 is what gets installed.
    let dest = tmp.path().join("app2");
    let server = {
        let (one, two) = (v1.zip.clone(), v2.zip.clone());
        TestServer::start(move |req, n| match n {
            0 => capped(ranged_reply(req, &one, "\"v1\"")),
            _ => capped(ranged_reply(req, &two, "\"v2\"")),
        })
    };
    pinned(&server.url("/app.zip"), &v1)
        .dest(&dest)
        .retries(0)
        .run()
        .unwrap();
    assert!(!parts_asked(&server).is_empty(), "the rest was not spread");
    assert_installed(&dest, &v1);
}

#[test]
fn a_range_cut_mid_way_is_retried_alone_from_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    const CUT: usize = 100_000;
    // The first part asked for breaks after CUT bytes.
    let server = capped_server_faulting(&v1, 1, Fault::CloseAfter(CUT));
    let dest = tmp.path().join("app");
    pinned(&server.url("/app.zip"), &v1)
        .dest(&dest)
        .retries(1)
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    let requests = server.requests();
    let (start, last) = range_of(&requests[1]).unwrap();
    let last = last.expect("a closed range");
    let again: Vec<_> = requests.iter().filter_map(range_of).collect();
    assert!(
        again.contains(&(start + CUT, Some(last))),
        "the cut range was not asked again from byte {}: {again:?}",
        start + CUT
    );
    // Nothing else was asked twice: the first connection went on, and no
    // other part started over.
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.header("range").is_none())
            .count(),
        1
    );
    assert_no_byte_asked_from_twice(again.iter().map(|r| r.0));
}

#[test]
fn a_stalled_range_trips_the_low_speed_rule_and_is_retried_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    const SENT: usize = 100_000;
    let stall = Fault::StallAfter(SENT, Duration::from_secs(10));
    let server = capped_server_faulting(&v1, 1, stall);
    let dest = tmp.path().join("app");
    let started = Instant::now();
    pinned(&server.url("/app.zip"), &v1)
        .dest(&dest)
        .speed_limit(100_000, Duration::from_millis(500))
        .retries(1)
        .run()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_installed(&dest, &v1);
    let requests = server.requests();
    let (start, last) = range_of(&requests[1]).unwrap();
    let asked: Vec<_> = requests.iter().filter_map(range_of).collect();
    assert!(asked.contains(&(start + SENT, last)), "{asked:?}");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.header("range").is_none())
            .count(),
        1
    );
}

#[test]
fn servers_without_ranges_are_served_by_one_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    // Advertises ranges but answers every request with the whole body.
    let ignoring = {
        let zip = v1.zip.clone();
        TestServer::start(move |_, _| {
            capped(
                Reply::ok(zip.clone())
                    .header("Accept-Ranges", "bytes")
                    .header("ETag", "\"v1\""),
            )
        })
    };
    // Understands only open ranges (`bytes=A-`): a closed one is
    // answered from byte 0, as its Content-Range says.
    let misplaced = {
        let zip = v1.zip.clone();
        TestServer::start(move |req, _| capped(Reply::file_with_ranges(req, &zip, "\"v1\"")))
    };
    for (name, server) in [("ignoring", &ignoring), ("misplaced", &misplaced)] {
        let dest = tmp.path().join(name).join("app");
        pinned(&server.url("/app.zip"), &v1)
            .dest(&dest)
            .retries(0)
            .run()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_installed(&dest, &v1);
        assert!(
            !parts_asked(server).is_empty(),
            "{name}: no range was tried"
        );
        let whole = server
            .requests()
            .iter()
            .filter(|r| r.header("range").is_none())
            .count();
        assert_eq!(whole, 1, "{name}: the first connection did not go on alone");
    }
    // No Accept-Ranges: no range is asked for.
    let plain = {
        let zip = v1.zip.clone();
        TestServer::start(move |_, _| capped(Reply::ok(zip.clone()).header("ETag", "\"v1\"")))
    };
    let dest = tmp.path().join("plain/app");
    pinned(&plain.url("/app.zip"), &v1)
        .dest(&dest)
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    assert_eq!(plain.requests().len(), 1);
}

#[test]
fn the_size_limit_holds_over_several_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    // Each range reply runs on past the end asked for (to the end of the
    // file), under a Content-Range that names the part.
    let server = {
        let zip = v1.zip.clone();
        TestServer::start(move |req, _| {
            let mut reply = capped(ranged_reply(req, &zip, "\"v1\""));
            if let Some((start, Some(_))) = range_of(req) {
                reply.body = zip[start..].to_vec();
            }
            reply
        })
    };
    let url = server.url("/app.zip");
    let len = v1.zip.len() as u64;
    let dest = tmp.path().join("app");
    pinned(&url, &v1)
        .dest(&dest)
        .max_download(len)
        .retries(0)
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    assert!(!parts_asked(&server).is_empty(), "the rest was not spread");

    let before = server.requests().len();
    let err = pinned(&url, &v1)
        .dest(tmp.path().join("small/app"))
        .max_download(len - 1)
        .retries(0)
        .run()
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Limit, "{err}");
    assert_eq!(
        server.requests().len(),
        before + 1,
        "no part may be asked for"
    );
}

#[test]
fn cancelling_stops_every_connection_and_keeps_a_resumable_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    let server = capped_server(&v1);
    let url = server.url("/app.zip");
    let dest = tmp.path().join("app");
    let state = state_dir(&dest);
    let spread_seen = Arc::new(AtomicBool::new(false));
    let described_while_spread = Arc::new(AtomicBool::new(false));
    let cancelled_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let err = {
        let server = &server;
        let (spread_seen, described, cancelled_at) = (
            spread_seen.clone(),
            described_while_spread.clone(),
            cancelled_at.clone(),
        );
        let started = Instant::now();
        pinned(&url, &v1)
            .dest(&dest)
            .progress(move |_| {
                let ranged = server.requests().len() > 2;
                if ranged && !spread_seen.swap(true, Ordering::SeqCst) {
                    // While spread, the file is described as a resumable
                    // prefix (up to where its bytes are contiguous).
                    described.store(state.join("partial.state").exists(), Ordering::SeqCst);
                }
                if ranged || started.elapsed() > Duration::from_secs(5) {
                    cancelled_at
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .run()
            .unwrap_err()
    };
    let stopped = cancelled_at.lock().unwrap().unwrap().elapsed();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err}");
    assert!(
        spread_seen.load(Ordering::SeqCst),
        "the rest was never spread"
    );
    assert!(described_while_spread.load(Ordering::SeqCst));
    assert!(
        stopped < Duration::from_secs(1),
        "stopped after {stopped:?}"
    );
    assert!(!dest.exists());

    assert_the_next_run_resumes_the_kept_prefix(&server, &url, &dest, &v1);
}

#[test]
fn a_part_of_another_version_fails_the_download_with_that_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let before = install_previous(&dest, &app_zip("v0"));
    let v1 = six_mib("v1");
    let len = v1.zip.len();
    // The last part is answered late (after the first connection has
    // handed over), once, under another ETag: as from a second server
    // behind a load balancer that stamps the file differently.
    let server = {
        let zip = v1.zip.clone();
        let refused = AtomicBool::new(false);
        TestServer::start(move |req, _| {
            let reply = capped(ranged_reply(req, &zip, "\"v1\""));
            let last = range_of(req).is_some_and(|(_, end)| end == Some(len - 1));
            if !last || refused.swap(true, Ordering::SeqCst) {
                return reply;
            }
            std::thread::sleep(Duration::from_secs(3));
            let mut reply = reply;
            reply.headers.retain(|(k, _)| k != "ETag");
            reply.header("ETag", "\"v1-elsewhere\"")
        })
    };
    let url = server
        .url("/app.zip")
        .replace("http://", "http://deployer:s3cret@");
    let err = pinned(&url, &v1).dest(&dest).retries(0).run().unwrap_err();
    assert!(parts_asked(&server).len() >= 3, "the rest was not spread");
    // The cause, not a "truncated" download; no credential.
    let message = err.to_string();
    assert!(message.contains("another version"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert_eq!(err.class(), ErrorClass::Network, "{err}");
    assert_untouched(&dest, &before);
    assert_the_next_run_resumes_the_kept_prefix(&server, &url, &dest, &v1);
}

#[test]
fn the_first_connection_cut_while_spread_asks_for_its_own_part_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    // The first connection (at about 1.6 MB/s: the rest is spread after
    // some 0.5 MB) breaks at CUT, inside its own part, while the helpers'
    // parts come whole.
    const CUT: usize = 1_100_000;
    let trickle = Fault::TrickleThenClose(64 * 1024, Duration::from_millis(40), CUT);
    let server = capped_server_faulting(&v1, 0, trickle);
    let dest = tmp.path().join("app");
    pinned(&server.url("/app.zip"), &v1)
        .dest(&dest)
        .retries(1)
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    let asked: Vec<_> = server.requests().iter().filter_map(range_of).collect();
    let first = parts_asked(&server)
        .iter()
        .map(|p| p.0)
        .filter(|start| *start > CUT)
        .min()
        .expect("the rest was not spread before the cut");
    // Its part alone, from where it stopped, up to the helpers' first
    // part; nothing the helpers brought is asked for again.
    assert!(asked.contains(&(CUT, Some(first - 1))), "{asked:?}");
    assert!(asked.iter().all(|(_, last)| last.is_some()), "{asked:?}");
    assert_no_byte_asked_from_twice(asked.iter().map(|r| r.0));
}

#[test]
fn a_server_putting_more_connections_off_leaves_the_first_to_go_on_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    // One connection at a time: every other is told to come back later,
    // as servers limiting connections per client do.
    let server = {
        let zip = v1.zip.clone();
        TestServer::start(move |req, _| match range_of(req) {
            Some((_, Some(_))) => Reply::status(503).header("Retry-After", "10"),
            _ => capped(ranged_reply(req, &zip, "\"v1\"")),
        })
    };
    // Not held up by the 10 s asked for.
    assert_the_first_connection_went_on(&tmp, &server, &v1, Duration::from_secs(8));
}

/// The deploy that `a_kill_while_spread_leaves_a_prefix_the_next_run_resumes`
/// kills: this test binary re-run with `ZIPDEPLOY_SPREAD_CHILD` set (a
/// no-op in a normal run).
#[test]
fn spread_child() {
    let Ok(url) = std::env::var("ZIPDEPLOY_SPREAD_CHILD") else {
        return;
    };
    Deploy::new(&url)
        .unwrap()
        .sha256(&std::env::var("ZIPDEPLOY_SPREAD_SHA256").unwrap())
        .unwrap()
        .dest(std::env::var("ZIPDEPLOY_SPREAD_DEST").unwrap())
        .connections(2)
        .run()
        .unwrap();
}

#[test]
fn a_kill_while_spread_leaves_a_prefix_the_next_run_resumes() {
    if std::env::var("ZIPDEPLOY_SPREAD_CHILD").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // About 4 s on one capped connection, 2 s on two.
    let v1 = package(12 << 20, 11, "v1");
    let server = capped_server(&v1);
    let url = server.url("/app.zip");
    let dest = tmp.path().join("app");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "spread_child", "--nocapture", "--test-threads=1"])
        .env("ZIPDEPLOY_SPREAD_CHILD", &url)
        .env("ZIPDEPLOY_SPREAD_SHA256", sha(&v1.zip))
        .env("ZIPDEPLOY_SPREAD_DEST", &dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed a second after the second connection asked for its part.
    let deadline = Instant::now() + Duration::from_secs(20);
    while parts_asked(&server).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !parts_asked(&server).is_empty(),
        "the rest was never spread"
    );
    assert!(!dest.exists(), "killed before activation");
    // The file holds the second part's bytes beyond the prefix.
    let left = read(state_dir(&dest).join("partial.zip"));
    assert_ne!(left, v1.zip[..left.len()], "nothing beyond the prefix");

    let before = server.requests().len();
    let report = pinned(&url, &v1).dest(&dest).run().unwrap();
    assert_installed(&dest, &v1);
    let resumed = &server.requests()[before];
    let (from, to) = range_of(resumed).expect("the next run resumed");
    assert_eq!(to, None, "{resumed:?}");
    assert_eq!(resumed.header("if-range"), Some("\"v1\""));
    // From the prefix vouched for: at least what one connection had before
    // the download spread (the probe), and not beyond its own part.
    assert!(
        from >= 256 << 10 && from < v1.zip.len() / 2 + (1 << 20),
        "{from}"
    );
    assert_eq!(report.bytes_downloaded, (v1.zip.len() - from) as u64);
}

#[test]
fn a_part_whose_request_hangs_is_brought_by_the_first_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    // The first of the helpers' parts gets no answer for 20 s, as from a
    // server that queues connections beyond its limit; the others are
    // served.
    let server = {
        let zip = v1.zip.clone();
        let starts = Arc::new(Mutex::new(Vec::new()));
        TestServer::start(move |req, _| {
            if let Some((start, Some(_))) = range_of(req) {
                starts.lock().unwrap().push(start);
                // Every part is asked for by then.
                std::thread::sleep(Duration::from_millis(300));
                if starts.lock().unwrap().iter().min() == Some(&start) {
                    std::thread::sleep(Duration::from_secs(20));
                }
            }
            capped(ranged_reply(req, &zip, "\"v1\""))
        })
    };
    // Not held up by the hanging request (about 3 s on one connection).
    assert_the_first_connection_went_on(&tmp, &server, &v1, Duration::from_secs(12));
}

#[test]
fn under_a_weak_etag_the_parts_are_asked_for_under_last_modified() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = six_mib("v1");
    const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    // A weak ETag may not make a range request conditional: this server
    // serves a range only under its Last-Modified date, and sends the
    // whole body for any other If-Range.
    let server = {
        let zip = v1.zip.clone();
        TestServer::start(move |req, _| {
            let mut req = req.clone();
            let honoured = req.header("if-range").is_none_or(|v| v == DATE);
            req.headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("if-range")
                    && (honoured || !k.eq_ignore_ascii_case("range"))
            });
            let mut reply = ranged_reply(&req, &zip, "W/\"v1\"");
            reply.headers.retain(|(k, _)| k != "ETag");
            capped(
                reply
                    .header("ETag", "W/\"v1\"")
                    .header("Last-Modified", DATE),
            )
        })
    };
    let dest = tmp.path().join("app");
    pinned(&server.url("/app.zip"), &v1)
        .dest(&dest)
        .retries(0)
        .run()
        .unwrap();
    assert_installed(&dest, &v1);
    let requests = server.requests();
    let parts = parts_asked(&server);
    assert!(parts.len() >= 2, "the rest was not spread: {requests:?}");
    for req in &requests[1..] {
        assert_eq!(req.header("if-range"), Some(DATE), "{req:?}");
    }
    // Every part came as asked: nothing was fetched twice.
    assert_eq!(requests.len(), 1 + parts.len(), "{requests:?}");
}
