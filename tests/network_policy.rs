//! Network policy against real servers on 127.0.0.1: user headers stay with
//! their origin, a trickling server is cut by the low-speed rule, and a
//! cancel through the progress callback takes effect within a second however
//! stalled the server is — with DEST intact and no work files left.

mod common;
use common::sha;

use std::io::Read;
use std::net::TcpListener;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::raw::{RawEntry, RawZip};
use common::*;
use zipdeploy::{Deploy, Error, ErrorClass};

/// A temp dir whose `app` holds a previous deploy, and its snapshot.
struct Fixture {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    before: Before,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        let before = install_previous(&dest, &app_zip("old"));
        Fixture {
            _tmp: tmp,
            dest,
            before,
        }
    }

    fn deploy(&self, url: &str) -> Deploy<'static> {
        Deploy::new(url).unwrap().dest(&self.dest).retries(0)
    }

    /// DEST is as it was and the state dir holds no work file.
    fn assert_intact(&self) {
        assert_untouched(&self.dest, &self.before);
    }
}

// ---------------------------------------------------------------------------
// Headers go only to their origin.
// ---------------------------------------------------------------------------

#[test]
fn a_header_does_not_follow_a_redirect_to_another_origin() {
    let pkg = app_zip("new");
    let other = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| Reply::ok(pkg.clone()))
    };
    let target = other.url("/cdn/app.zip");
    let first = TestServer::start(move |req, _| match req.path.as_str() {
        "/app.zip" => Reply::status(302).header("Location", "/moved/app.zip"),
        _ => Reply::status(302).header("Location", &target),
    });
    let f = Fixture::new();
    f.deploy(&first.url("/app.zip"))
        .header("PRIVATE-TOKEN", "tok-for-first-origin")
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();

    let seen = first.requests();
    assert_eq!(seen.len(), 2, "the redirect within the origin is followed");
    for req in &seen {
        assert_eq!(
            req.header("private-token"),
            Some("tok-for-first-origin"),
            "{req:?}"
        );
    }
    let elsewhere = other.requests();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].header("private-token"), None, "{elsewhere:?}");
}

#[test]
fn a_mirror_on_another_origin_gets_only_its_own_headers() {
    let pkg = app_zip("new");
    let primary = TestServer::start(|_, _| Reply::status(404));
    let mirror = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| Reply::ok(pkg.clone()))
    };
    let f = Fixture::new();
    let report = f
        .deploy(&primary.url("/app.zip"))
        .header("X-Api-Key", "key-for-primary")
        .mirror(&mirror.url("/app.zip"))
        .unwrap()
        .header_for(&mirror.url("/"), "X-Api-Key", "key-for-mirror")
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(report.mirrors_skipped.len(), 1);

    let asked = primary.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].header("x-api-key"), Some("key-for-primary"));
    let asked = mirror.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].header("x-api-key"),
        Some("key-for-mirror"),
        "{asked:?}"
    );
}

#[test]
fn a_mirror_on_the_same_origin_gets_the_package_headers() {
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |req, _| match req.path.as_str() {
            "/gone.zip" => Reply::status(404),
            _ => Reply::ok(pkg.clone()),
        })
    };
    let f = Fixture::new();
    f.deploy(&server.url("/gone.zip"))
        .header("PRIVATE-TOKEN", "tok")
        .mirror(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    let asked = server.requests();
    assert_eq!(asked.len(), 2);
    assert!(asked
        .iter()
        .all(|r| r.header("private-token") == Some("tok")));
}

#[test]
fn an_origin_for_headers_must_be_an_http_url() {
    let err = Deploy::new("https://example.com/app.zip")
        .unwrap()
        .header_for("/srv/mirror", "X-Api-Key", "k")
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Usage, "{err}");
}

// ---------------------------------------------------------------------------
// The low-speed rule.
// ---------------------------------------------------------------------------

#[test]
fn a_trickling_server_is_cut_by_the_low_speed_rule_and_retried() {
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::Trickle(1, Duration::from_millis(200)))
        })
    };
    let f = Fixture::new();
    let started = Instant::now();
    let err = f
        .deploy(&server.url("/app.zip"))
        .retries(1)
        .speed_limit(1000, Duration::from_millis(800))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Network);
    assert!(err.to_string().contains("low speed"), "{err}");
    assert_eq!(server.requests().len(), 2, "the first try and one retry");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    f.assert_intact();
}

#[test]
fn a_slow_but_steady_server_passes_the_low_speed_rule() {
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::Trickle(64, Duration::from_millis(5)))
        })
    };
    let f = Fixture::new();
    f.deploy(&server.url("/app.zip"))
        .speed_limit(1000, Duration::from_millis(300))
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(read(f.dest.join("VERSION")), b"new");
}

// ---------------------------------------------------------------------------
// A cancel takes effect within a second, however stalled the server is.
// ---------------------------------------------------------------------------

/// Runs `deploy` with a progress callback that cancels once `cancel_after`
/// has passed; returns the error and how long the cancel took to end it.
fn cancel_after(deploy: Deploy<'static>, cancel_after: Duration) -> (Error, Duration) {
    let cancel = Arc::new(AtomicBool::new(false));
    let cancelled_at = Arc::new(Mutex::new(None::<Instant>));
    {
        let cancel = cancel.clone();
        let cancelled_at = cancelled_at.clone();
        thread::spawn(move || {
            thread::sleep(cancel_after);
            *cancelled_at.lock().unwrap() = Some(Instant::now());
            cancel.store(true, Ordering::SeqCst);
        });
    }
    let err = deploy
        .progress(move |_| {
            if cancel.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .run()
        .unwrap_err();
    let at = cancelled_at
        .lock()
        .unwrap()
        .expect("cancelled before the end");
    (err, at.elapsed())
}

#[test]
fn a_cancel_ends_a_download_stalled_mid_body_within_a_second() {
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::StallAfter(100, Duration::from_secs(30)))
        })
    };
    let f = Fixture::new();
    let (err, took) = cancel_after(
        f.deploy(&server.url("/app.zip")),
        Duration::from_millis(400),
    );
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    f.assert_intact();
}

/// Small files, then two of 512 MiB of zeros in 1 MiB each (their CRCs
/// wrong): seconds of writing, whichever thread writes them.
fn large_files_package() -> Vec<u8> {
    let mut z = RawZip::new();
    for i in 0..40 {
        z.add(&RawEntry::stored(format!("small/{i}.txt"), b"small"));
    }
    z.add(&RawEntry::zeros("large/a.bin", 512));
    z.add(&RawEntry::zeros("large/b.bin", 512));
    z.finish()
}

#[test]
fn a_cancel_ends_the_extraction_of_large_files_within_a_second() {
    let pkg = large_files_package();
    let server = TestServer::serving(pkg.clone());
    for stream in [false, true] {
        let f = Fixture::new();
        let deploy = f
            .deploy(&server.url("/app.zip"))
            .sha256(&sha(&pkg))
            .unwrap()
            .stream(stream);
        let (err, took) = cancel_after(deploy, Duration::from_millis(400));
        assert!(matches!(err, Error::Cancelled), "stream {stream}: {err}");
        assert!(
            took < Duration::from_secs(1),
            "stream {stream}: cancel took {took:?}"
        );
        f.assert_intact();
    }
}

#[test]
fn a_cancel_ends_a_wait_for_the_response_within_a_second() {
    // Accepts connections, reads the request, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    let f = Fixture::new();
    let (err, took) = cancel_after(
        f.deploy(&format!("http://{addr}/app.zip")),
        Duration::from_millis(400),
    );
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    f.assert_intact();
}

#[test]
fn a_cancel_ends_a_backoff_between_retries_within_a_second() {
    let server = TestServer::start(|_, _| Reply::status(503).header("Retry-After", "30"));
    let f = Fixture::new();
    let (err, took) = cancel_after(
        f.deploy(&server.url("/app.zip")).retries(3),
        Duration::from_millis(400),
    );
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    assert_eq!(server.requests().len(), 1);
    f.assert_intact();
}

#[test]
fn a_cancel_ends_a_stalled_sidecar_fetch_within_a_second() {
    let server = TestServer::start(|req, _| match req.path.as_str() {
        "/app.zip.sha256" => {
            Reply::ok(b"0".repeat(64)).fault(Fault::StallAfter(10, Duration::from_secs(30)))
        }
        _ => Reply::status(404),
    });
    let f = Fixture::new();
    let (err, took) = cancel_after(
        f.deploy(&server.url("/app.zip"))
            .sha256_from(&server.url("/app.zip.sha256"))
            .unwrap(),
        Duration::from_millis(400),
    );
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    f.assert_intact();
}

// ---------------------------------------------------------------------------
// A deploy queued behind another one's lock stays cancellable.
// ---------------------------------------------------------------------------

/// Takes the `flock` of `path` (created if needed) as another deploy would,
/// and releases it after 3 s (so that a deploy that cannot stop waiting
/// fails its timing check instead of hanging).
fn hold_lock(path: &std::path::Path) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(3));
        drop(file);
    });
}

#[test]
fn a_cancel_ends_a_wait_for_the_destination_lock_within_a_second() {
    let f = Fixture::new();
    hold_lock(&f.dest.parent().unwrap().join(".app.zipdeploy/lock"));
    let pkg = f.dest.parent().unwrap().join("new.zip");
    std::fs::write(&pkg, app_zip("new")).unwrap();
    let (err, took) = cancel_after(f.deploy(pkg.to_str().unwrap()), Duration::from_millis(200));
    std::fs::remove_file(&pkg).unwrap();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    f.assert_intact();
}

#[test]
fn a_deploy_waiting_for_the_destination_lock_sends_heartbeats_then_runs() {
    let f = Fixture::new();
    hold_lock(&f.dest.parent().unwrap().join(".app.zipdeploy/lock"));
    let pkg = app_zip("new");
    let server = TestServer::serving(pkg.clone());
    let heartbeats = Arc::new(Mutex::new(0u32));
    let deploy = {
        let heartbeats = heartbeats.clone();
        f.deploy(&server.url("/app.zip"))
            .sha256(&sha(&pkg))
            .unwrap()
            .progress(move |p| {
                if p.bytes == 0 && p.stage == zipdeploy::Stage::Fetch {
                    *heartbeats.lock().unwrap() += 1;
                }
                ControlFlow::Continue(())
            })
    };
    let deploying = thread::spawn(move || deploy.run());
    thread::sleep(Duration::from_millis(800));
    assert!(server.requests().is_empty(), "the lock was not waited for");
    assert!(
        *heartbeats.lock().unwrap() >= 3,
        "no heartbeats while waiting"
    );
    // Runs once the lock is released.
    deploying.join().unwrap().unwrap();
    assert_eq!(read(f.dest.join("VERSION")), b"new");
}

#[test]
fn a_cancel_ends_a_wait_for_a_cache_entry_lock_within_a_second() {
    let f = Fixture::new();
    let pkg = app_zip("new");
    let server = TestServer::serving(pkg.clone());
    let cache = f.dest.parent().unwrap().join("cache");
    std::fs::create_dir_all(cache.join("sha256")).unwrap();
    chmod(&cache, 0o700);
    chmod(&cache.join("sha256"), 0o700);
    hold_lock(&cache.join(format!("sha256/{}.lock", sha(&pkg))));
    let (err, took) = cancel_after(
        f.deploy(&server.url("/app.zip"))
            .sha256(&sha(&pkg))
            .unwrap()
            .cache(&cache),
        Duration::from_millis(200),
    );
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    assert!(server.requests().is_empty());
    std::fs::remove_dir_all(&cache).unwrap();
    f.assert_intact();
}
