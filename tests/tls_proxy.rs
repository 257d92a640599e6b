//! TLS trust (the host's store, `SSL_CERT_FILE`, `SSL_CERT_DIR`, `--cacert`,
//! the C setter) and proxies (curl's variables, `CONNECT`, `NO_PROXY`, per
//! redirect hop), against servers and a proxy on 127.0.0.1 that the tests
//! start. Trust-store variables are process-wide, so those tests run the CLI
//! as a child process; proxies are injected through `ProxyConfig`.

mod common;
use common::{cli_path, sha};

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use zipdeploy::{Deploy, ProxyConfig};

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `CONNECT host:port HTTP/1.1`, or whatever else came.
    line: String,
    proxy_authorization: Option<String>,
}

/// A forward proxy on 127.0.0.1: `CONNECT host:port` opens a tunnel to
/// 127.0.0.1:port whatever the host (so made-up names work), then pipes
/// both ways. Anything else gets 400. Records what it saw.
struct TestProxy {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestProxy {
    fn start() -> TestProxy {
        TestProxy::start_answering(None)
    }

    /// A proxy that answers every request with `status` instead.
    fn start_answering(status: Option<&'static str>) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let log = log.clone();
                thread::spawn(move || proxy_one(client, &log, status));
            }
        });
        TestProxy { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.line).collect()
    }
}

fn proxy_one(client: TcpStream, log: &Mutex<Vec<Seen>>, status: Option<&str>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut proxy_authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("proxy-authorization") {
                proxy_authorization = Some(v.trim().to_string());
            }
        }
    }
    let line = line.trim().to_string();
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        proxy_authorization,
    });
    let mut client = client;
    if let Some(status) = status {
        let _ = write!(client, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = write!(
            client,
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        );
        return;
    };
    let port = target.rsplit(':').next().unwrap_or("");
    let Ok(mut upstream) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
        let _ = write!(
            client,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        );
        return;
    };
    if write!(client, "HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
        return;
    }
    // Bytes the client sent after the head, already read into the buffer.
    let early = reader.buffer().to_vec();
    if upstream.write_all(&early).is_err() {
        return;
    }
    let mut up_reader = upstream.try_clone().unwrap();
    let mut client_writer = client.try_clone().unwrap();
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut up_reader, &mut client_writer);
        let _ = client_writer.shutdown(Shutdown::Write);
    });
    let mut client_reader = reader.into_inner();
    let _ = std::io::copy(&mut client_reader, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
}

fn deploy_to(dest: &Path, url: &str) -> Deploy<'static> {
    Deploy::new(url)
        .unwrap()
        .dest(dest)
        .durable(false)
        .retries(0)
        .stall_timeout(Duration::from_secs(5))
}

/// A made-up host name: it resolves nowhere, so a deploy from it can only
/// succeed through the proxy (which connects to 127.0.0.1).
fn made_up(server: &TestServer, path: &str) -> String {
    format!("http://pkg.zipdeploy.test:{}{path}", server.addr().port())
}

#[test]
fn http_urls_use_http_proxy_and_never_https_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = app_zip("proxied");
    let server = TestServer::serving(pkg.clone());
    let for_http = TestProxy::start();
    let for_https = TestProxy::start();
    let proxies = ProxyConfig::from_vars(|name| match name {
        "http_proxy" => Some(for_http.url()),
        "HTTPS_PROXY" | "https_proxy" => Some(for_https.url()),
        _ => None,
    });
    deploy_to(&tmp.path().join("a"), &made_up(&server, "/app.zip"))
        .proxy(proxies)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    let port = server.addr().port();
    assert_eq!(
        for_http.lines(),
        [format!("CONNECT pkg.zipdeploy.test:{port} HTTP/1.1")]
    );
    assert!(for_https.seen().is_empty(), "{:?}", for_https.seen());

    // HTTPS_PROXY alone (and upper-case HTTP_PROXY, which curl ignores):
    // an http:// URL goes direct.
    let proxies = ProxyConfig::from_vars(|name| match name {
        "HTTPS_PROXY" | "HTTP_PROXY" => Some(for_https.url()),
        _ => None,
    });
    deploy_to(&tmp.path().join("b"), &server.url("/app.zip"))
        .proxy(proxies)
        .run()
        .unwrap();
    assert!(for_https.seen().is_empty(), "{:?}", for_https.seen());
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn https_urls_go_through_connect_with_https_proxy_and_its_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = app_zip("tunnelled");
    let server = TestServer::start_tls({
        let pkg = pkg.clone();
        move |_, _| Reply::ok(pkg.clone())
    });
    let proxy = TestProxy::start();
    let proxies = ProxyConfig::from_vars(|name| match name {
        "HTTPS_PROXY" => Some(format!("http://ci:pr0xy-secret@{}", proxy.addr)),
        _ => None,
    });
    deploy_to(&tmp.path().join("app"), &server.url("/app.zip"))
        .proxy(proxies)
        .root_certificate_pem(test_ca_pem())
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line, format!("CONNECT {} HTTP/1.1", server.addr()));
    // base64("ci:pr0xy-secret")
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic Y2k6cHIweHktc2VjcmV0")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn no_proxy_domains_and_ranges_go_direct() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(app_zip("direct"));
    let port = server.addr().port();
    let proxy = TestProxy::start();
    let via = |no_proxy: &str| ProxyConfig {
        all: Some(proxy.url()),
        no_proxy: Some(no_proxy.into()),
        ..ProxyConfig::none()
    };
    let localhost = format!("http://localhost:{port}/app.zip");
    let by_address = server.url("/app.zip");

    deploy_to(&tmp.path().join("a"), &localhost)
        .proxy(via("example.com, .localhost"))
        .run()
        .unwrap();
    deploy_to(&tmp.path().join("b"), &by_address)
        .proxy(via("127.0.0.0/8"))
        .run()
        .unwrap();
    deploy_to(&tmp.path().join("c"), &by_address)
        .proxy(via("*"))
        .run()
        .unwrap();
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());

    // Entries that do not match: through the proxy.
    deploy_to(&tmp.path().join("d"), &localhost)
        .proxy(via("10.0.0.0/8,notlocalhost"))
        .run()
        .unwrap();
    deploy_to(&tmp.path().join("e"), &by_address)
        .proxy(via("127.0.0.2,localhost"))
        .run()
        .unwrap();
    assert_eq!(
        proxy.lines(),
        [
            format!("CONNECT localhost:{port} HTTP/1.1"),
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1"),
        ]
    );
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn each_redirect_hop_picks_its_own_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = app_zip("hopped");
    let port = std::sync::OnceLock::<u16>::new();
    let port = Arc::new(port);
    let server = {
        let (pkg, port) = (pkg.clone(), port.clone());
        TestServer::start(move |req, _| match req.path.as_str() {
            "/latest.zip" => Reply::status(302).header(
                "Location",
                &format!("http://127.0.0.1:{}/v2/app.zip", port.get().unwrap()),
            ),
            _ => Reply::ok(pkg.clone()),
        })
    };
    port.set(server.addr().port()).unwrap();
    let proxy = TestProxy::start();
    let proxies = ProxyConfig {
        http: Some(proxy.url()),
        no_proxy: Some("127.0.0.0/8".into()),
        ..ProxyConfig::none()
    };
    deploy_to(&tmp.path().join("app"), &made_up(&server, "/latest.zip"))
        .proxy(proxies)
        .sha256(&sha(&pkg))
        .unwrap()
        .run()
        .unwrap();
    // The made-up host through the proxy, the redirect to 127.0.0.1 direct.
    assert_eq!(
        proxy.lines(),
        [format!(
            "CONNECT pkg.zipdeploy.test:{} HTTP/1.1",
            server.addr().port()
        )]
    );
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/latest.zip", "/v2/app.zip"]);
}

#[test]
fn proxy_credentials_never_appear_in_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(app_zip("never"));
    let refusing = TestProxy::start_answering(Some("407 Proxy Authentication Required"));
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (proxy, shown) in [
        (
            format!("http://ci:pr0xy-secret@{}", refusing.addr),
            format!("http://{}", refusing.addr),
        ),
        (
            format!("ci:pr0xy-secret@127.0.0.1:{closed_port}"),
            format!("http://127.0.0.1:{closed_port}"),
        ),
        (
            "socks5://ci:pr0xy-secret@127.0.0.1:1080".to_string(),
            "socks5://127.0.0.1:1080".to_string(),
        ),
    ] {
        let dest = tmp.path().join("app");
        let err = deploy_to(&dest, &server.url("/app.zip"))
            .proxy(ProxyConfig {
                http: Some(proxy.clone()),
                ..ProxyConfig::none()
            })
            .run()
            .unwrap_err();
        let message = format!("{err} / {err:?}");
        assert!(!message.contains("pr0xy-secret"), "{message}");
        assert!(!message.contains("ci:"), "{message}");
        assert!(message.contains(&shown), "{proxy}: {message}");
        assert!(!dest.exists());
    }
    assert_eq!(refusing.seen().len(), 1);
    assert!(server.requests().is_empty());
}

/// A proxy that speaks TLS (the test CA's certificate for 127.0.0.1) and
/// answers every request with 407: enough to see whether a client trusted
/// it and sent its request.
fn start_tls_proxy_answering_407() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let config = tls_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (config, log) = (config.clone(), log.clone());
            thread::spawn(move || {
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, client));
                let mut line = String::new();
                if tls.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                log.lock().unwrap().push(line.trim().to_string());
                let mut h = String::new();
                while tls.read_line(&mut h).unwrap_or(0) > 0 && !h.trim().is_empty() {
                    h.clear();
                }
                let tls = tls.get_mut();
                let _ = tls.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
                let _ = tls.flush();
            });
        }
    });
    (addr, seen)
}

#[test]
fn an_https_proxy_is_verified_with_the_same_trust_as_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(app_zip("never"));
    let (proxy, seen) = start_tls_proxy_answering_407();
    let proxies = ProxyConfig {
        http: Some(format!("https://{proxy}")),
        ..ProxyConfig::none()
    };
    // An http:// package URL, but TLS to the proxy: not trusted by default.
    let err = deploy_to(&tmp.path().join("app"), &made_up(&server, "/app.zip"))
        .proxy(proxies.clone())
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 35, "{err}");
    assert!(seen.lock().unwrap().is_empty());
    // With the test CA, the proxy is trusted and gets the CONNECT.
    let err = deploy_to(&tmp.path().join("app"), &made_up(&server, "/app.zip"))
        .proxy(proxies)
        .root_certificate_pem(test_ca_pem())
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 31, "{err}");
    assert!(err.to_string().contains("407"), "{err}");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!(
            "CONNECT pkg.zipdeploy.test:{} HTTP/1.1",
            server.addr().port()
        )]
    );
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------
// Trust: the CLI as a child process (the variables are process-wide).
// ---------------------------------------------------------------------------

/// The CLI with a clean environment (no proxy, no trust variables).
fn zipdeploy(vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(cli_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::null());
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.output().unwrap()
}

fn exit_code(output: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap(), stderr)
}

fn tls_package_server() -> (TestServer, Vec<u8>) {
    let pkg = app_zip("trusted");
    let server = TestServer::start_tls({
        let pkg = pkg.clone();
        move |_, _| Reply::ok(pkg.clone())
    });
    (server, pkg)
}

#[test]
fn the_cli_trusts_ssl_cert_file_and_ssl_cert_dir() {
    let (server, pkg) = tls_package_server();
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/app.zip");
    let digest = sha(&pkg);
    let ca = fixture("tls/ca.pem");
    let run = |vars: &[(&str, &Path)], dest: &str| {
        let dest = tmp.path().join(dest);
        let dest = dest.to_str().unwrap();
        exit_code(&zipdeploy(
            vars,
            &[
                "--url", &url, "--sha256", &digest, "--dest", dest, "--quiet",
            ],
        ))
    };

    // The system store does not hold the test CA.
    let (code, stderr) = run(&[], "untrusted");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");

    let (code, stderr) = run(&[("SSL_CERT_FILE", &ca)], "by-file");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("by-file/VERSION")).unwrap(),
        "trusted"
    );

    // A directory of PEM files: names need not be OpenSSL hashes.
    let dir = tmp.path().join("certs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&ca, dir.join("test-ca.pem")).unwrap();
    std::fs::write(dir.join("README"), "not a certificate\n").unwrap();
    let (code, stderr) = run(&[("SSL_CERT_DIR", &dir)], "by-dir");
    assert_eq!(code, 0, "{stderr}");

    // Set but unusable: a usage error naming the variable, no fallback.
    let missing = tmp.path().join("missing.pem");
    let (code, stderr) = run(&[("SSL_CERT_FILE", &missing)], "missing");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("SSL_CERT_FILE="), "{stderr}");
    assert!(!tmp.path().join("missing").exists());
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn the_cli_trusts_cacert_from_the_flag_or_the_variable() {
    let (server, pkg) = tls_package_server();
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/app.zip");
    let digest = sha(&pkg);
    let ca = fixture("tls/ca.pem");
    let dest = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();

    let flag = dest("by-flag");
    let (code, stderr) = exit_code(&zipdeploy(
        &[],
        &[
            "--url",
            &url,
            "--sha256",
            &digest,
            "--dest",
            &flag,
            "--cacert",
            ca.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 0, "{stderr}");

    let var = dest("by-variable");
    let (code, stderr) = exit_code(&zipdeploy(
        &[("ZIPDEPLOY_CACERT", &ca)],
        &["--url", &url, "--sha256", &digest, "--dest", &var],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.requests().len(), 2);

    // Not a certificate (a key): a usage error naming the file; missing: an
    // I/O error. Nothing is fetched.
    let not_a_cert = fixture("tls/server.key");
    let (code, stderr) = exit_code(&zipdeploy(
        &[],
        &[
            "--url",
            &url,
            "--dest",
            &dest("bad"),
            "--cacert",
            not_a_cert.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("server.key"), "{stderr}");
    let (code, stderr) = exit_code(&zipdeploy(
        &[],
        &[
            "--url",
            &url,
            "--dest",
            &dest("bad"),
            "--cacert",
            "/nonexistent/ca.pem",
        ],
    ));
    assert_eq!(code, 7, "{stderr}");
    assert_eq!(server.requests().len(), 2);
}

// ---------------------------------------------------------------------------
// Trust: the C setter, called as C would.
// ---------------------------------------------------------------------------

#[test]
fn the_c_setter_adds_and_clears_a_ca_file() {
    use zipdeploy::ffi::*;
    let (server, _pkg) = tls_package_server();
    let tmp = tempfile::tempdir().unwrap();
    let c = |s: &str| CString::new(s).unwrap();
    let url = c(&server.url("/app.zip"));
    let dest = c(tmp.path().join("app").to_str().unwrap());
    let ca = c(fixture("tls/ca.pem").to_str().unwrap());
    let key = c(fixture("tls/server.key").to_str().unwrap());
    let missing = c("/nonexistent/ca.pem");
    // SAFETY: every pointer is a live handle from zipdeploy_deploy_new or a
    // NUL-terminated string that outlives the call; out-pointers are valid.
    unsafe {
        let deploy = zipdeploy_deploy_new();
        assert_eq!(zipdeploy_deploy_set_url(deploy, url.as_ptr()), ZIPDEPLOY_OK);
        assert_eq!(
            zipdeploy_deploy_set_dest(deploy, dest.as_ptr()),
            ZIPDEPLOY_OK
        );
        assert_eq!(zipdeploy_deploy_set_retries(deploy, 0), ZIPDEPLOY_OK);
        let run = |deploy| {
            let mut report = std::ptr::null_mut();
            let mut error = std::ptr::null_mut();
            let status = zipdeploy_deploy_run(deploy, &mut report, &mut error);
            zipdeploy_report_free(report);
            zipdeploy_error_free(error);
            status
        };
        assert_eq!(run(deploy), ZIPDEPLOY_TLS, "untrusted by default");

        assert_eq!(
            zipdeploy_deploy_add_cacert_file(deploy, std::ptr::null()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_add_cacert_file(std::ptr::null_mut(), ca.as_ptr()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_add_cacert_file(deploy, missing.as_ptr()),
            ZIPDEPLOY_IO
        );
        assert_eq!(
            zipdeploy_deploy_add_cacert_file(deploy, key.as_ptr()),
            ZIPDEPLOY_CONFIG
        );
        assert_eq!(
            zipdeploy_deploy_add_cacert_file(deploy, ca.as_ptr()),
            ZIPDEPLOY_OK
        );
        assert_eq!(run(deploy), ZIPDEPLOY_OK);

        // Cleared: untrusted again (a new package, so not a no-op).
        assert_eq!(zipdeploy_deploy_clear_cacerts(deploy), ZIPDEPLOY_OK);
        let other = c(&server.url("/other.zip"));
        let zeros = c(&"0".repeat(64));
        assert_eq!(
            zipdeploy_deploy_set_url(deploy, other.as_ptr()),
            ZIPDEPLOY_OK
        );
        assert_eq!(
            zipdeploy_deploy_set_sha256(deploy, zeros.as_ptr()),
            ZIPDEPLOY_OK
        );
        assert_eq!(run(deploy), ZIPDEPLOY_TLS);
        zipdeploy_deploy_free(deploy);
    }
    assert_eq!(server.requests().len(), 1);
}
