//! Helpers shared by the integration tests: a real HTTP/1.1 server on
//! 127.0.0.1 with fault injection, ZIP builders, and tree snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub mod cli;
pub mod mounts;
pub mod raw;
pub mod signing;

use zip::write::SimpleFileOptions;
use zip::ZipWriter;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the server misbehaves while sending a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Send the headers (with the full Content-Length) and this many body
    /// bytes, then close the connection.
    CloseAfter(usize),
    /// Send this many body bytes, then stall for the duration.
    StallAfter(usize, Duration),
    /// Send the body in pieces of this size with a pause after each.
    Trickle(usize, Duration),
    /// Like `Trickle`, then close the connection once this many body bytes
    /// are sent (the headers announce the whole body).
    TrickleThenClose(usize, Duration, usize),
    /// No Content-Length; stream zeros until the client hangs up (at most
    /// 4 GiB, so the loop is bounded).
    Endless,
}

/// A reply to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub fault: Fault,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/zip".into())],
            body: body.into(),
            fault: Fault::None,
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!("<!DOCTYPE html><html><body>{status}</body></html>").into_bytes(),
            fault: Fault::None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn fault(mut self, fault: Fault) -> Reply {
        self.fault = fault;
        self
    }

    /// Serves `body` honouring `Range` (and `If-Range` against `etag`), as a
    /// static file server does.
    pub fn file_with_ranges(req: &Request, body: &[u8], etag: &str) -> Reply {
        let base = Reply::ok(body.to_vec())
            .header("Accept-Ranges", "bytes")
            .header("ETag", etag);
        let Some(range) = req.header("range") else {
            return base;
        };
        if req.header("if-range").is_some_and(|v| v != etag) {
            return base;
        }
        let start: usize = range
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap_or(0);
        if start >= body.len() {
            return Reply::status(416).header("Content-Range", &format!("bytes */{}", body.len()));
        }
        let mut reply = Reply::ok(body[start..].to_vec())
            .header("Accept-Ranges", "bytes")
            .header("ETag", etag)
            .header(
                "Content-Range",
                &format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
            );
        reply.status = 206;
        reply
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// The test CA's certificate, which signs `tests/fixtures/tls/server.pem`.
pub fn test_ca_pem() -> Vec<u8> {
    fs::read(fixture("tls/ca.pem")).unwrap()
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The server side of TLS with the test CA's certificate for 127.0.0.1.
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixture("tls/server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("tls/server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// An HTTP server on 127.0.0.1, one thread per connection, stopped on drop.
pub struct TestServer {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    https: bool,
}

impl TestServer {
    /// Starts a server; `handler` gets each request and its 0-based number.
    pub fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(handler, None)
    }

    /// Starts an HTTPS server with the test CA's certificate for 127.0.0.1.
    pub fn start_tls(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(handler, Some(tls_config()))
    }

    fn start_with(
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let https = tls.is_some();
        {
            let requests = requests.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let requests = requests.clone();
                    let tls = tls.clone();
                    thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        match tls {
                            None => serve(stream, &*handler, &requests),
                            Some(config) => {
                                let Ok(conn) = rustls::ServerConnection::new(config) else {
                                    return;
                                };
                                let tls_stream = rustls::StreamOwned::new(conn, stream);
                                serve(tls_stream, &*handler, &requests)
                            }
                        }
                    });
                }
            });
        }
        TestServer {
            addr,
            requests,
            stop,
            https,
        }
    }

    /// Serves `body` at every path, with range support.
    pub fn serving(body: Vec<u8>) -> Self {
        Self::start(move |req, _| Reply::file_with_ranges(req, &body, "\"v1\""))
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve<S: Read + Write>(stream: S, handler: &Handler, requests: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request {
        method,
        path,
        headers,
    };
    let n = {
        let mut log = requests.lock().unwrap();
        log.push(req.clone());
        log.len() - 1
    };
    let reply = handler(&req, n);
    let mut out = reader.into_inner();
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if reply.fault != Fault::Endless {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let body = &reply.body[..];
    let _ = match reply.fault {
        Fault::None => out.write_all(body),
        Fault::CloseAfter(n) => out.write_all(&body[..n.min(body.len())]),
        Fault::StallAfter(n, d) => {
            let _ = out.write_all(&body[..n.min(body.len())]);
            let _ = out.flush();
            thread::sleep(d);
            Ok(())
        }
        Fault::Trickle(size, pause) => {
            let mut result = Ok(());
            for piece in body.chunks(size.max(1)) {
                result = out.write_all(piece).and_then(|()| out.flush());
                if result.is_err() {
                    break;
                }
                thread::sleep(pause);
            }
            result
        }
        Fault::TrickleThenClose(size, pause, after) => {
            let mut result = Ok(());
            for piece in body[..after.min(body.len())].chunks(size.max(1)) {
                result = out.write_all(piece).and_then(|()| out.flush());
                if result.is_err() {
                    break;
                }
                thread::sleep(pause);
            }
            result
        }
        Fault::Endless => {
            let zeros = vec![0u8; 64 * 1024];
            for _ in 0..(4u64 << 30) / zeros.len() as u64 {
                if out.write_all(&zeros).is_err() {
                    break;
                }
            }
            Ok(())
        }
    };
    let _ = out.flush();
}

/// One entry of a test archive.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    FileMode(&'a str, &'a [u8], u32),
    Dir(&'a str),
    DirMode(&'a str, u32),
    Symlink(&'a str, &'a str),
}

/// Builds a ZIP archive in memory with the zip crate's writer.
pub fn zip_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let deflate = SimpleFileOptions::default();
    for e in entries {
        match *e {
            Entry::File(name, data) => {
                w.start_file(name, deflate.unix_permissions(0o644)).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::FileMode(name, data, mode) => {
                w.start_file(name, deflate.unix_permissions(mode)).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::Dir(name) => w.add_directory(name, deflate).unwrap(),
            Entry::DirMode(name, mode) => w
                .add_directory(name, deflate.unix_permissions(mode))
                .unwrap(),
            Entry::Symlink(name, target) => w.add_symlink(name, target, deflate).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

/// A small, valid application package; `version` shows up in its files.
pub fn app_zip(version: &str) -> Vec<u8> {
    let index = format!("<?php echo 'version {version}';\n");
    zip_of(&[
        Entry::File("index.php", index.as_bytes()),
        Entry::Dir("static/"),
        Entry::File("static/app.css", b"body { color: black }\n"),
        Entry::FileMode("bin/start.sh", b"#!/bin/sh\necho started\n", 0o755),
        Entry::File("VERSION", version.as_bytes()),
    ])
}

/// What a tree holds: relative path → kind, permission bits and content.
pub type Snapshot = BTreeMap<PathBuf, (char, u32, Vec<u8>)>;

/// Snapshots everything below `root` (not following links).
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, ('l', 0, target.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                walk(root, &path, out);
            } else {
                out.insert(rel, ('f', mode, fs::read(&path).unwrap()));
            }
        }
    }
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// A server with fixed files at paths (ranges supported, the query
/// ignored), 404 elsewhere.
pub fn site(files: Vec<(&str, Vec<u8>)>) -> TestServer {
    let files: std::collections::HashMap<String, Vec<u8>> =
        files.into_iter().map(|(p, b)| (p.to_string(), b)).collect();
    TestServer::start(move |req, _| {
        let path = req.path.split('?').next().unwrap_or_default();
        match files.get(path) {
            Some(body) => Reply::file_with_ranges(req, body, "\"e\""),
            None => Reply::status(404),
        }
    })
}

/// The `VERSION` file of the tree at `dest` (see [`app_zip`]).
pub fn version(dest: &Path) -> String {
    fs::read_to_string(dest.join("VERSION")).unwrap()
}

/// Installs `zip` at `dest` from a local file (removed again): the
/// previous deploy that a failing run must leave in place. Returns what
/// DEST and its parent hold then.
pub fn install_previous(dest: &Path, zip: &[u8]) -> Before {
    let pkg = dest.parent().unwrap().join("previous.zip");
    fs::write(&pkg, zip).unwrap();
    zipdeploy::Deploy::new(pkg.to_str().unwrap())
        .unwrap()
        .dest(dest)
        .run()
        .unwrap();
    fs::remove_file(&pkg).unwrap();
    Before::of(dest)
}

/// DEST's tree and the names beside it before a run that must leave them
/// as they were.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub tree: Snapshot,
    beside: Vec<String>,
}

impl Before {
    /// Takes DEST's tree and the names in its parent now.
    pub fn of(dest: &Path) -> Before {
        Before {
            tree: snapshot(dest),
            beside: names_in(dest.parent().unwrap()),
        }
    }
}

/// DEST holds the tree it held before; beside it is nothing new but its
/// state directory (a first run creates it); and that holds no leftover of
/// a run, by the library's own list of the names a run works under.
pub fn assert_untouched(dest: &Path, before: &Before) {
    assert_eq!(snapshot(dest), before.tree, "DEST changed");
    let layout = zipdeploy::Layout::new(dest).unwrap();
    let state = layout.state_dir();
    let state_name = state.file_name().unwrap().to_str().unwrap().to_string();
    let now = names_in(dest.parent().unwrap());
    let new: Vec<&String> = now
        .iter()
        .filter(|n| !before.beside.contains(n) && **n != state_name)
        .collect();
    assert!(new.is_empty(), "created beside DEST: {new:?}");
    let gone: Vec<&String> = before.beside.iter().filter(|n| !now.contains(n)).collect();
    assert!(gone.is_empty(), "removed beside DEST: {gone:?}");
    assert_no_leftovers(state);
}

/// The state directory `state` (if there is one) holds no leftover of a run.
pub fn assert_no_leftovers(state: &Path) {
    if !state.exists() {
        return;
    }
    let left: Vec<String> = names_in(state)
        .into_iter()
        .filter(|n| zipdeploy::install::is_leftover(n))
        .collect();
    assert!(
        left.is_empty(),
        "leftovers in {}: {left:?}",
        state.display()
    );
}

/// Names directly inside `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Sets the permission bits of a path.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Reads a whole file.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let mut v = Vec::new();
    fs::File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// SHA-256 of `bytes` as lowercase hex, as `--sha256` takes it.
/// Incompressible bytes from a xorshift generator seeded with `seed`, so
/// that a package is as big as its content.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A package of `noise` stored (so its size is the download's) as
/// `data/noise.bin`, plus a `VERSION` file.
pub fn noise_package(noise: &[u8], version: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("data/noise.bin", stored).unwrap();
    w.write_all(noise).unwrap();
    w.start_file("VERSION", stored).unwrap();
    w.write_all(version.as_bytes()).unwrap();
    w.finish().unwrap().into_inner()
}

pub fn sha(bytes: &[u8]) -> String {
    zipdeploy::Sha256Digest::of(bytes).to_hex()
}

/// The example CLI built beside this test binary
/// (`<target>/<profile>/examples/zipdeploy`).
pub fn cli_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let cli = profile_dir.join("examples").join("zipdeploy");
    assert!(
        cli.is_file(),
        "{} is missing: plain `cargo test` builds it, `cargo test --test NAME` alone does not \
         (run `cargo build --example zipdeploy` first)",
        cli.display()
    );
    cli
}
