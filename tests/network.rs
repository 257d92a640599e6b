//! Network faults, injected by a real HTTP(S) server on 127.0.0.1: every
//! failure is one named error and leaves DEST exactly as it was.

mod common;
use common::sha;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::{Deploy, Error, NetworkKind, TimeoutKind, TlsKind};

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
        Deploy::new(url)
            .unwrap()
            .dest(&self.dest)
            .durable(false)
            .retries(0)
            .stall_timeout(Duration::from_secs(5))
    }

    /// The failure left DEST and its surroundings exactly as they were.
    fn assert_intact(&self) {
        assert_untouched(&self.dest, &self.before);
    }

    fn assert_installed(&self, version: &str) {
        assert_eq!(read(self.dest.join("VERSION")), version.as_bytes());
    }
}

#[test]
fn http_500_is_retried_then_reported() {
    let f = Fixture::new();
    let server = TestServer::start(|_, _| Reply::status(500));
    let err = f
        .deploy(&server.url("/app.zip"))
        .retries(2)
        .run()
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 500, .. }),
        "{err}"
    );
    assert_eq!(server.requests().len(), 3, "first try plus two retries");
    f.assert_intact();
}

#[test]
fn http_503_then_200_succeeds_on_retry() {
    let f = Fixture::new();
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, n| match n {
            0 => Reply::status(503),
            _ => Reply::ok(pkg.clone()),
        })
    };
    f.deploy(&server.url("/app.zip"))
        .retries(3)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(server.requests().len(), 2);
    f.assert_installed("new");
}

#[test]
fn http_429_honours_retry_after() {
    let f = Fixture::new();
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, n| match n {
            0 => Reply::status(429).header("Retry-After", "1"),
            _ => Reply::ok(pkg.clone()),
        })
    };
    let started = Instant::now();
    f.deploy(&server.url("/app.zip")).retries(1).run().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
    f.assert_installed("new");
}

#[test]
fn a_4xx_other_than_408_and_429_is_not_retried() {
    let f = Fixture::new();
    let server = TestServer::start(|_, _| Reply::status(403));
    let err = f
        .deploy(&server.url("/a.zip"))
        .retries(3)
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 30, "{err}");
    assert_eq!(server.requests().len(), 1);
    f.assert_intact();
}

/// A package big enough that a connection can drop in its middle.
fn big_package() -> Vec<u8> {
    let noise: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    zip_of(&[
        Entry::File("VERSION", b"new"),
        Entry::File("data.bin", &noise),
    ])
}

#[test]
fn a_dropped_connection_resumes_with_range_and_verifies_the_whole_file() {
    let f = Fixture::new();
    let pkg = big_package();
    let cut = pkg.len() / 3;
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |req, n| {
            let reply = Reply::file_with_ranges(req, &pkg, "\"abc\"");
            if n == 0 {
                reply.fault(Fault::CloseAfter(cut))
            } else {
                reply
            }
        })
    };
    let report = f
        .deploy(&server.url("/app.zip"))
        .retries(2)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(requests[1].header("if-range"), Some("\"abc\""));
    assert_eq!(report.bytes_downloaded, pkg.len() as u64);
    f.assert_installed("new");
}

#[test]
fn without_range_support_a_dropped_download_restarts_from_zero() {
    let f = Fixture::new();
    let pkg = big_package();
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, n| {
            let reply = Reply::ok(pkg.clone());
            if n == 0 {
                reply.fault(Fault::CloseAfter(1000))
            } else {
                reply
            }
        })
    };
    f.deploy(&server.url("/app.zip"))
        .retries(1)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("range"), None);
    f.assert_installed("new");
}

#[test]
fn a_resume_that_serves_different_bytes_fails_the_digest() {
    let f = Fixture::new();
    let pkg = big_package();
    let mut tampered = pkg.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 0xff;
    let cut = pkg.len() / 2;
    let server = {
        let (pkg, tampered) = (pkg.clone(), tampered.clone());
        TestServer::start(move |req, n| match n {
            0 => Reply::file_with_ranges(req, &pkg, "\"x\"").fault(Fault::CloseAfter(cut)),
            // Same validator, different bytes: only the digest can tell.
            _ => Reply::file_with_ranges(req, &tampered, "\"x\""),
        })
    };
    let err = f
        .deploy(&server.url("/app.zip"))
        .retries(1)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(
        server.requests()[1].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    f.assert_intact();
}

#[test]
fn a_body_shorter_than_content_length_is_truncated() {
    let f = Fixture::new();
    let pkg = big_package();
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| Reply::ok(pkg.clone()).fault(Fault::CloseAfter(5000)))
    };
    let err = f.deploy(&server.url("/app.zip")).run().unwrap_err();
    match &err {
        Error::Truncated {
            received, expected, ..
        } => {
            assert_eq!(*received, 5000);
            assert_eq!(*expected, pkg.len() as u64);
        }
        other => panic!("expected Truncated, got {other}"),
    }
    assert_eq!(err.code(), 33);
    f.assert_intact();
}

#[test]
fn a_stalled_server_fails_within_the_stall_timeout() {
    let f = Fixture::new();
    let pkg = big_package();
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::StallAfter(1000, Duration::from_secs(20)))
        })
    };
    let started = Instant::now();
    let err = f
        .deploy(&server.url("/app.zip"))
        .stall_timeout(Duration::from_millis(700))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    f.assert_intact();
}

#[test]
fn the_overall_timeout_bounds_retries() {
    let f = Fixture::new();
    let server = TestServer::start(|_, _| Reply::status(503).header("Retry-After", "30"));
    let started = Instant::now();
    let err = f
        .deploy(&server.url("/app.zip"))
        .retries(10)
        .timeout(Duration::from_millis(800))
        .run()
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.class(), zipdeploy::ErrorClass::Network, "{err}");
    f.assert_intact();
}

#[test]
fn redirects_are_followed_and_loops_refused() {
    let f = Fixture::new();
    let pkg = app_zip("new");
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |req, _| match req.path.as_str() {
            "/latest.zip" => Reply::status(302).header("Location", "/v2/app.zip"),
            "/v2/app.zip" => Reply::ok(pkg.clone()),
            "/loop-a" => Reply::status(302).header("Location", "/loop-b"),
            _ => Reply::status(302).header("Location", "/loop-a"),
        })
    };
    let err = f.deploy(&server.url("/loop-a")).run().unwrap_err();
    assert!(matches!(err, Error::Redirect { .. }), "{err}");
    assert_eq!(err.code(), 34);
    f.assert_intact();

    f.deploy(&server.url("/latest.zip"))
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    f.assert_installed("new");
}

#[test]
fn https_with_a_private_ca() {
    let f = Fixture::new();
    let pkg = app_zip("tls");
    let server = TestServer::start_tls({
        let pkg = pkg.clone();
        move |_, _| Reply::ok(pkg.clone())
    });
    let url = server.url("/app.zip");
    assert!(url.starts_with("https://127.0.0.1:"));

    // Not trusted by default: a TLS error, not retried.
    let err = f.deploy(&url).retries(2).run().unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert_eq!(server.requests().len(), 0, "no request got through TLS");
    f.assert_intact();

    f.deploy(&url)
        .root_certificate_pem(test_ca_pem())
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    f.assert_installed("tls");
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let f = Fixture::new();
    let plain = TestServer::serving(app_zip("downgraded"));
    let target = plain.url("/app.zip");
    let server = TestServer::start_tls(move |_, _| Reply::status(302).header("Location", &target));
    let err = f
        .deploy(&server.url("/app.zip"))
        .root_certificate_pem(test_ca_pem())
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
    assert!(
        plain.requests().is_empty(),
        "the http server was never asked"
    );
    f.assert_intact();
}

#[test]
fn an_endless_body_is_cut_at_the_download_limit() {
    let f = Fixture::new();
    let server = TestServer::start(|_, _| Reply::ok(Vec::new()).fault(Fault::Endless));
    let started = Instant::now();
    let err = f
        .deploy(&server.url("/app.zip"))
        .max_download(1 << 20)
        .run()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: zipdeploy::Limit::DownloadSize,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    f.assert_intact();
}

#[test]
fn a_content_length_over_the_limit_is_refused_before_the_body() {
    let f = Fixture::new();
    let body_reads = Arc::new(AtomicUsize::new(0));
    let server = {
        let body_reads = body_reads.clone();
        TestServer::start(move |_, _| {
            body_reads.fetch_add(1, Ordering::SeqCst);
            Reply::ok(vec![0u8; 3 << 20])
        })
    };
    let err = f
        .deploy(&server.url("/app.zip"))
        .max_download(1 << 20)
        .retries(3)
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "download size limit exceeded: 3145728 > 1048576"
    );
    assert_eq!(body_reads.load(Ordering::SeqCst), 1, "not retried");
    f.assert_intact();
}

#[test]
fn connection_refused_is_a_network_error_without_credentials() {
    let f = Fixture::new();
    // Bind then drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://ci:tok3n-secret@127.0.0.1:{port}/app.zip");
    let err = f.deploy(&url).run().unwrap_err();
    assert_eq!(err.code(), 31, "{err}");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("tok3n-secret"), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
    f.assert_intact();
}

// ---------------------------------------------------------------------------
// Typed causes: a caller branches on the kind, never on the message.
// ---------------------------------------------------------------------------

/// The error's `source()` chain, each link's message.
fn chain(err: &Error) -> Vec<String> {
    let mut links = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        links.push(e.to_string());
        next = e.source();
    }
    links
}

#[test]
fn a_refused_connection_is_a_typed_connect_failure_without_credentials() {
    let f = Fixture::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://deployer:hunter22@127.0.0.1:{port}/app.zip");
    let err = f.deploy(&url).run().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Network {
                kind: NetworkKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("a typed source");
    assert_eq!(
        source.downcast_ref::<NetworkKind>(),
        Some(&NetworkKind::Connect)
    );
    let shown = format!("{err} {:?}", chain(&err));
    assert!(!shown.contains("hunter22"), "{shown}");
    f.assert_intact();
}

#[test]
fn a_stall_is_a_typed_stall_timeout() {
    let f = Fixture::new();
    let pkg = big_package();
    let server = TestServer::start(move |_, _| {
        Reply::ok(pkg.clone()).fault(Fault::StallAfter(1000, Duration::from_secs(20)))
    });
    let err = f
        .deploy(&server.url("/app.zip"))
        .stall_timeout(Duration::from_millis(500))
        .run()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: TimeoutKind::Stall,
                ..
            }
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("a typed source");
    assert_eq!(
        source.downcast_ref::<TimeoutKind>(),
        Some(&TimeoutKind::Stall)
    );
    f.assert_intact();
}

#[test]
fn an_untrusted_certificate_is_a_typed_certificate_failure() {
    let f = Fixture::new();
    let server = TestServer::start_tls(|_, _| Reply::ok(app_zip("tls")));
    let err = f.deploy(&server.url("/app.zip")).run().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls {
                kind: TlsKind::Certificate,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(chain(&err), ["certificate refused"]);
    f.assert_intact();
}

/// Serves `head` then `body` on every connection, as written (no framing
/// added), and closes.
fn raw_server(head: String, body: Vec<u8>) -> String {
    let mut response = head.into_bytes();
    response.extend_from_slice(&body);
    raw_server_answering(move |_| response.clone())
}

/// Serves `answer(n)` on the `n`th connection, as written, and closes.
fn raw_server_answering(answer: impl Fn(usize) -> Vec<u8> + Send + 'static) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/app.zip", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let _ = stream.write_all(&answer(n));
        }
    });
    url
}

#[test]
fn a_chunked_body_is_framed_by_its_chunks_not_a_content_length_beside_them() {
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3), and the
    // body is read by its chunks: the length beside them is not the size.
    let f = Fixture::new();
    let pkg = app_zip("new");
    let mut body = format!("{:x}\r\n", pkg.len()).into_bytes();
    body.extend_from_slice(&pkg);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    let url = raw_server(head.to_string(), body);
    let report = f
        .deploy(&url)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.package_size, pkg.len() as u64);
    assert_eq!(version(&f.dest), "new");
}

#[test]
fn a_resumed_answer_claiming_an_endless_length_is_an_error_not_a_panic() {
    let f = Fixture::new();
    let pkg = big_package();
    let half = pkg.len() / 2;
    let url = {
        let pkg = pkg.clone();
        raw_server_answering(move |n| {
            let (head, body) = match n {
                0 => (
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\n\
                         Accept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                        pkg.len()
                    ),
                    &pkg[..half],
                ),
                // The rest, with no total and a length no body has.
                _ => (
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {half}-{}/*\r\n\
                         Content-Length: {}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                        pkg.len() - 1,
                        u64::MAX
                    ),
                    &pkg[half..],
                ),
            };
            let mut response = head.into_bytes();
            response.extend_from_slice(body);
            response
        })
    };
    let err = f
        .deploy(&url)
        .sha256(&sha(&pkg))
        .unwrap()
        .retries(1)
        .run()
        .unwrap_err();
    // The body ends where no length said it would: refused, as a broken
    // exchange.
    assert_eq!(err.class(), zipdeploy::ErrorClass::Network, "{err}");
    f.assert_intact();
}
