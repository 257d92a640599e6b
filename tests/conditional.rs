//! Conditional re-fetch: with no digest pinned, the next deploy of a
//! location sends the installed package's validators (`If-None-Match`,
//! `If-Modified-Since`); a `304` is a no-op that downloads and extracts
//! nothing and leaves DEST as it is, a changed package is deployed.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use zipdeploy::{Deploy, ErrorClass, Sha256Digest};

/// Python's `http.server` serving `dir` on 127.0.0.1, with the status line
/// of each request it answered.
struct PythonServer {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl PythonServer {
    fn start(dir: &Path) -> PythonServer {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // 127.0.0.1 - - [date] "GET /app.zip HTTP/1.1" 304 -
                if let Some((_, request)) = line.split_once("] \"") {
                    lines.lock().unwrap().push(request.to_string());
                }
            }
        });
        PythonServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests answered so far, waiting a little for the log to flush.
    fn requests(&self, expected: usize) -> Vec<String> {
        for _ in 0..100 {
            if self.log.lock().unwrap().len() >= expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.log.lock().unwrap().clone()
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `bytes` to `path` with a modification time `age` seconds ago.
fn publish(path: &Path, bytes: &[u8], age: u64) {
    std::fs::write(path, bytes).unwrap();
    let when = SystemTime::now() - Duration::from_secs(age);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn an_unchanged_package_on_python_http_server_costs_one_request_and_no_body() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let package = site.join("app.zip");
    publish(&package, &app_zip("1"), 300);
    let server = PythonServer::start(&site);
    let dest = tmp.path().join("app");
    let deploy = || {
        Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .dest(&dest)
            .run()
            .unwrap()
    };

    let first = deploy();
    assert!(!first.noop && !first.not_modified);
    assert_eq!(server.requests(1), ["GET /app.zip HTTP/1.1\" 200 -"]);
    let tree = snapshot(&dest);
    let inode = std::fs::metadata(&dest).unwrap().ino();

    let second = deploy();
    assert!(second.noop && second.not_modified, "{second:?}");
    assert_eq!(second.bytes_downloaded, 0);
    assert_eq!((second.entries, second.files), (0, 0), "nothing extracted");
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.package_size, first.package_size);
    let log = server.requests(2);
    assert_eq!(log.len(), 2, "one request: {log:?}");
    assert_eq!(log[1], "GET /app.zip HTTP/1.1\" 304 -", "no body");
    assert_eq!(snapshot(&dest), tree);
    assert_eq!(
        std::fs::metadata(&dest).unwrap().ino(),
        inode,
        "DEST untouched"
    );
    let state = names_in(&tmp.path().join(".app.zipdeploy"));
    assert!(
        !state
            .iter()
            .any(|n| n.starts_with("partial") || n.starts_with("download-")),
        "{state:?}"
    );

    // The file changes: a full deploy.
    publish(&package, &app_zip("2"), 100);
    let third = deploy();
    assert!(!third.noop && !third.not_modified, "{third:?}");
    assert_eq!(third.bytes_downloaded, app_zip("2").len() as u64);
    assert_eq!(read(dest.join("VERSION")), b"2");
    assert_eq!(server.requests(3)[2], "GET /app.zip HTTP/1.1\" 200 -");

    // Touched, same bytes: downloaded again (a no-op), and its new date is
    // remembered, so the next deploy is conditional again.
    publish(&package, &app_zip("2"), 10);
    let fourth = deploy();
    assert!(fourth.noop && !fourth.not_modified, "{fourth:?}");
    let fifth = deploy();
    assert!(fifth.not_modified, "{fifth:?}");
    assert_eq!(server.requests(5)[4], "GET /app.zip HTTP/1.1\" 304 -");
}

/// Serves `body()` with its ETag, and `304` to an `If-None-Match` with it.
fn etag_server(body: impl Fn() -> (Vec<u8>, String) + Send + Sync + 'static) -> TestServer {
    TestServer::start(move |req, _| {
        let (body, etag) = body();
        if req.header("if-none-match") == Some(&etag) {
            let mut reply = Reply::ok(Vec::new()).header("ETag", &etag);
            reply.status = 304;
            return reply;
        }
        Reply::ok(body).header("ETag", &etag)
    })
}

#[test]
fn only_an_unpinned_deploy_of_the_same_location_is_conditional() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let v1 = app_zip("1");
    let server = {
        let v1 = v1.clone();
        etag_server(move || (v1.clone(), "\"abc\"".into()))
    };
    let url = server.url("/app.zip");
    let with_password = url.replace("http://", "http://deploy:hunter22@");
    let run = |url: &str, sha256: Option<&[u8]>| {
        let mut deploy = Deploy::new(url).unwrap().dest(&dest);
        if let Some(bytes) = sha256 {
            deploy = deploy.digest(Sha256Digest::of(bytes));
        }
        deploy.run().unwrap()
    };
    run(&with_password, None);
    let record = std::fs::read_to_string(tmp.path().join(".app.zipdeploy/current")).unwrap();
    assert!(record.contains("etag=\"abc\""), "{record}");
    assert!(
        !record.contains("hunter22") && !record.contains("deploy:"),
        "{record}"
    );

    // Same location, credentials included: conditional.
    assert!(run(&with_password, None).not_modified);
    assert_eq!(
        server.requests()[1].header("if-none-match"),
        Some("\"abc\"")
    );
    // Other credentials: another location, so no validators are sent.
    let report = run(&url, None);
    assert!(report.noop && !report.not_modified);
    assert_eq!(server.requests()[2].header("if-none-match"), None);
    // A pinned digest (of another package): never conditional.
    let v2 = app_zip("2");
    let err = Deploy::new(&url)
        .unwrap()
        .dest(&dest)
        .digest(Sha256Digest::of(&v2))
        .run()
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Digest, "{err}");
    assert_eq!(server.requests()[3].header("if-none-match"), None);
    // The record now names `url`: conditional from there.
    assert!(run(&url, None).not_modified);
    assert_eq!(server.requests().len(), 5);
    assert_eq!(read(dest.join("VERSION")), b"1");
}
