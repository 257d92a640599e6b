//! What the fetch tells a user on the way: `Retry-After` as an HTTP date,
//! timeout messages in plain words, and the notice hook (`-v`) seeing each
//! retry and redirect. Servers on 127.0.0.1 only.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use zipdeploy::{Deploy, FetchOptions, Notice};

struct Dest {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
}

impl Dest {
    fn new() -> Dest {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        Dest { _tmp: tmp, dest }
    }

    fn deploy(&self, url: &str, options: FetchOptions) -> Deploy<'static> {
        Deploy::new(url)
            .unwrap()
            .dest(&self.dest)
            .durable(false)
            .fetch_options(options)
    }
}

/// `time` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`
/// (Howard Hinnant's `civil_from_days`).
fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[month as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn the_test_date_format_is_imf_fixdate() {
    let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(date), "Sun, 06 Nov 1994 08:49:37 GMT");
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let pkg = app_zip("new");
    let server = TestServer::start(move |_, n| match n {
        // Whole seconds: two seconds ahead is at least one second away.
        0 => Reply::status(503).header(
            "Retry-After",
            &http_date(SystemTime::now() + Duration::from_secs(2)),
        ),
        _ => Reply::ok(pkg.clone()),
    });
    let d = Dest::new();
    let options = FetchOptions {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let started = Instant::now();
    d.deploy(&server.url("/app.zip"), options).run().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_deadline_in_the_body_is_named_in_plain_words() {
    let server = TestServer::start(|_, _| {
        Reply::ok(app_zip("new")).fault(Fault::StallAfter(100, Duration::from_secs(30)))
    });
    let d = Dest::new();
    let options = FetchOptions {
        retries: 0,
        timeout: Some(Duration::from_millis(800)),
        ..FetchOptions::default()
    };
    let err = d
        .deploy(&server.url("/app.zip"), options)
        .run()
        .unwrap_err();
    let message = err.to_string();
    assert!(!message.contains("global"), "{message}");
    assert!(message.contains("overall deadline"), "{message}");
}

#[test]
fn a_stalled_body_is_named_in_plain_words() {
    let server = TestServer::start(|_, _| {
        Reply::ok(app_zip("new")).fault(Fault::StallAfter(0, Duration::from_secs(30)))
    });
    let d = Dest::new();
    let options = FetchOptions {
        retries: 0,
        stall_timeout: Duration::from_millis(300),
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let err = d
        .deploy(&server.url("/app.zip"), options)
        .run()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = err.to_string();
    assert!(message.contains("stall timeout"), "{message}");
    assert!(!message.contains("per read"), "{message}");
}

#[test]
fn notices_name_each_retry_and_redirect_without_secrets() {
    let pkg = app_zip("new");
    let package_requests = Arc::new(AtomicUsize::new(0));
    let server = {
        let package_requests = package_requests.clone();
        TestServer::start(move |req, _| match req.path.as_str() {
            // A presigned target: its query is a secret.
            "/latest" => Reply::status(302).header("Location", "/app.zip?token=s3cret"),
            _ if package_requests.fetch_add(1, Ordering::SeqCst) == 0 => Reply::status(503),
            _ => Reply::ok(pkg.clone()),
        })
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let options = FetchOptions {
        retries: 2,
        backoff: Duration::from_millis(10),
        on_notice: Some({
            let seen = seen.clone();
            Arc::new(move |n: &Notice| seen.lock().unwrap().push(n.clone()))
        }),
        ..FetchOptions::default()
    };
    let d = Dest::new();
    d.deploy(&server.url("/latest"), options).run().unwrap();
    let seen = seen.lock().unwrap();
    let kinds: Vec<&str> = seen
        .iter()
        .map(|n| match n {
            Notice::Redirect { .. } => "redirect",
            Notice::Retry { .. } => "retry",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["redirect", "retry", "redirect"], "{seen:?}");
    let lines: Vec<String> = seen.iter().map(ToString::to_string).collect();
    assert!(
        lines[0].starts_with("redirect 302 from http://127.0.0.1:"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("/app.zip?token=***"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("s3cret")), "{lines:?}");
    assert!(lines[1].contains("503"), "{lines:?}");
    assert!(lines[1].contains("retry 1/2"), "{lines:?}");
}
