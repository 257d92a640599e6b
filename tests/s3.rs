//! `s3://bucket/key` packages against an S3 endpoint on 127.0.0.1 that
//! recomputes every request's SigV4 signature with its own HMAC (the `hmac`
//! crate, not the library's) and refuses a wrong one with 403, as S3 does;
//! and the CLI taking credentials from each source of the AWS chain, served
//! by local servers speaking the container, IMDSv2 and STS protocols.

mod common;
use common::sha;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::signing::Signer;
use common::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zipdeploy::s3::{Credentials, S3Options};
use zipdeploy::{Deploy, Error, FetchOptions};

const KEY_ID: &str = "AKIATESTKEY0001";
const SECRET: &str = "s3-test-secret/wJalrXUtnFEMI+K7MDENG";
const TOKEN: &str = "s3-test-session-token-FwoGZXIvYXdz";
const REGION: &str = "eu-central-1";
const BUCKET: &str = "releases";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks a request's SigV4 `Authorization` the way S3 does, with the
/// secret `SECRET`, for `region`; requires the session token `TOKEN`.
fn verify(req: &Request, region: &str) -> Result<(), String> {
    let auth = req.header("authorization").ok_or("no Authorization")?;
    let fields = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let mut parts = HashMap::new();
    for field in fields.split(", ") {
        let (name, value) = field.split_once('=').ok_or("bad Authorization")?;
        parts.insert(name, value);
    }
    let scope: Vec<&str> = parts["Credential"].split('/').collect();
    if scope[0] != KEY_ID || scope[2] != region || scope[3] != "s3" || scope[4] != "aws4_request" {
        return Err(format!("bad scope {scope:?}"));
    }
    let stamp = req.header("x-amz-date").ok_or("no x-amz-date")?;
    if !stamp.starts_with(scope[1]) {
        return Err("scope date is not the request date".into());
    }
    let signed: Vec<&str> = parts["SignedHeaders"].split(';').collect();
    for needed in [
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ] {
        if !signed.contains(&needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    if req.header("x-amz-security-token") != Some(TOKEN) {
        return Err("wrong session token".into());
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        let value = req.header(name).ok_or(format!("signed {name} not sent"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let canonical_request = format!(
        "{}\n{path}\n{query}\n{canonical_headers}\n{}\n{}",
        req.method,
        parts["SignedHeaders"],
        req.header("x-amz-content-sha256").unwrap()
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{}/{region}/s3/aws4_request\n{}",
        scope[1],
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), scope[1]);
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    if hex(&hmac(&key, &string_to_sign)) != parts["Signature"] {
        return Err("signature does not match".into());
    }
    Ok(())
}

fn s3_error(status: u16, code: &str) -> Reply {
    let mut reply = Reply::status(status);
    reply.body = format!("<Error><Code>{code}</Code></Error>").into_bytes();
    reply
}

/// An S3 endpoint serving `objects` (key → bytes) of bucket `BUCKET`,
/// path-style, to requests signed for `region`; `extra` answers first
/// (redirects, faults) for the paths it knows.
fn s3_endpoint_with(
    region: &'static str,
    objects: Vec<(&str, Vec<u8>)>,
    extra: impl Fn(&Request, usize) -> Option<Reply> + Send + Sync + 'static,
    tls: bool,
) -> TestServer {
    let objects: HashMap<String, Vec<u8>> = objects
        .into_iter()
        .map(|(k, v)| (format!("/{BUCKET}/{k}"), v))
        .collect();
    let handler = move |req: &Request, n: usize| {
        if let Err(why) = verify(req, region) {
            eprintln!("s3 test endpoint refused {}: {why}", req.path);
            return s3_error(403, "SignatureDoesNotMatch");
        }
        if let Some(reply) = extra(req, n) {
            return reply;
        }
        match objects.get(&req.path) {
            Some(body) => Reply::file_with_ranges(req, body, "\"etag-1\""),
            None => s3_error(404, "NoSuchKey"),
        }
    };
    if tls {
        TestServer::start_tls(handler)
    } else {
        TestServer::start(handler)
    }
}

fn s3_endpoint(objects: Vec<(&str, Vec<u8>)>) -> TestServer {
    s3_endpoint_with(REGION, objects, |_, _| None, false)
}

fn s3_options(server: &TestServer, secret: &str) -> FetchOptions {
    FetchOptions {
        retries: 1,
        backoff: std::time::Duration::from_millis(10),
        s3: S3Options {
            endpoint: Some(server.url("/").parse().unwrap()),
            region: Some(REGION.into()),
            credentials: Some(Credentials::new(KEY_ID, secret, Some(TOKEN.into()))),
            ..S3Options::default()
        },
        ..FetchOptions::default()
    }
}

/// Every file under `dir`, read, must hold neither the secret nor the token.
fn assert_no_secret_in_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            assert_no_secret_in_files(&path);
        } else if meta.is_file() {
            let text = String::from_utf8_lossy(&read(&path)).into_owned();
            assert!(
                !text.contains(SECRET) && !text.contains(TOKEN),
                "{} holds a credential",
                path.display()
            );
        }
    }
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "secret key in {text}");
    assert!(!text.contains(TOKEN), "session token in {text}");
}

#[test]
fn s3_package_with_sidecar_and_minisign_signature_beside_it() {
    let zip = app_zip("s3-v1");
    let signer = Signer::new();
    let server = s3_endpoint(vec![
        ("app/v1.zip", zip.clone()),
        (
            "app/v1.zip.sha256",
            format!("{}  v1.zip\n", sha(&zip)).into_bytes(),
        ),
        ("app/v1.zip.minisig", signer.sign(&zip).into_bytes()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let key = zipdeploy::signature::PublicKey::parse(&signer.public_base64()).unwrap();
    let report = Deploy::new("s3://releases/app/v1.zip")
        .unwrap()
        .sha256_from("s3://releases/app/v1.zip.sha256")
        .unwrap()
        .minisign_key(key)
        .fetch_options(s3_options(&server, SECRET))
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&zip));
    assert_eq!(report.source, "s3://releases/app/v1.zip");
    assert_eq!(report.signed_by, Some(signer.key_id()));
    assert!(report.streamed, "extracted while downloading");
    assert_eq!(read(tmp.path().join("app/VERSION")), b"s3-v1");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/releases/app/v1.zip.sha256",
            "/releases/app/v1.zip.minisig",
            "/releases/app/v1.zip"
        ]
    );

    assert_no_secret(&format!("{report:?}"));
    let status = zipdeploy::status(tmp.path().join("app")).unwrap();
    assert_no_secret(&format!("{status:?}"));
    assert_no_secret_in_files(tmp.path());
}

#[test]
fn a_wrong_secret_is_refused_and_the_error_shows_no_credential() {
    let server = s3_endpoint(vec![("app.zip", app_zip("x"))]);
    let tmp = tempfile::tempdir().unwrap();
    let wrong = "wrong-secret-key-0123456789";
    let mut options = s3_options(&server, wrong);
    let err = Deploy::new("s3://releases/app.zip")
        .unwrap()
        .fetch_options(options.clone())
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 403, .. }),
        "{err}"
    );
    for shown in [err.to_string(), format!("{err:?}"), format!("{options:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(TOKEN), "{shown}");
    }
    assert!(!tmp.path().join("app").exists());

    // The same request signed with the right secret passes: the 403 was the
    // signature's, not the server's.
    options.s3.credentials = Some(Credentials::new(KEY_ID, SECRET, Some(TOKEN.into())));
    Deploy::new("s3://releases/app.zip")
        .unwrap()
        .fetch_options(options)
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
}

#[test]
fn each_redirect_hop_is_signed_anew_and_other_origins_get_no_signature() {
    let zip = app_zip("moved");
    let elsewhere = Arc::new(TestServer::serving(zip.clone()));
    let target = elsewhere.url("/cdn/app.zip");
    let server = s3_endpoint_with(
        REGION,
        vec![("app.zip", zip.clone())],
        move |req, _| match req.path.as_str() {
            // Same origin, other path: passes only if re-signed for it.
            "/releases/old.zip" => Some(Reply::status(301).header("Location", "/releases/app.zip")),
            "/releases/cdn.zip" => Some(Reply::status(307).header("Location", &target)),
            _ => None,
        },
        false,
    );
    let tmp = tempfile::tempdir().unwrap();
    for (location, dest) in [
        ("s3://releases/old.zip", "a"),
        ("s3://releases/cdn.zip", "b"),
    ] {
        Deploy::new(location)
            .unwrap()
            .sha256(&sha(&zip))
            .unwrap()
            .fetch_options(s3_options(&server, SECRET))
            .dest(tmp.path().join(dest))
            .run()
            .unwrap();
    }
    let seen = elsewhere.requests();
    assert_eq!(seen.len(), 1);
    for (name, _) in &seen[0].headers {
        let name = name.to_ascii_lowercase();
        assert!(
            name != "authorization" && !name.starts_with("x-amz-"),
            "{name} sent to another origin"
        );
    }
}

#[test]
fn an_interrupted_download_resumes_with_a_signed_range_request() {
    let zip = app_zip("resumed");
    let body = zip.clone();
    let server = s3_endpoint_with(
        REGION,
        vec![("app.zip", zip.clone())],
        move |req, n| {
            (n == 0).then(|| {
                Reply::file_with_ranges(req, &body, "\"etag-1\"").fault(Fault::CloseAfter(100))
            })
        },
        false,
    );
    let tmp = tempfile::tempdir().unwrap();
    let report = Deploy::new("s3://releases/app.zip")
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .fetch_options(s3_options(&server, SECRET))
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.package_size, zip.len() as u64);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("range"), Some("bytes=100-"));
}

/// `body` as S3 serves it, closed ranges (`bytes=A-B`) included, at about
/// 3 MB/s per connection (S3 caps each connection; its guidance is
/// parallel byte-range GETs).
fn capped_object(req: &Request, body: &[u8]) -> Reply {
    let pace = Fault::Trickle(64 * 1024, std::time::Duration::from_millis(20));
    let range = req.header("range").and_then(|r| r.strip_prefix("bytes="));
    let Some((first, last)) = range.and_then(|r| r.split_once('-')) else {
        return Reply::file_with_ranges(req, body, "\"etag-1\"").fault(pace);
    };
    let first: usize = first.parse().unwrap();
    let last: usize = last.parse().unwrap_or(body.len() - 1);
    let mut reply = Reply::ok(body[first..=last].to_vec())
        .header("Accept-Ranges", "bytes")
        .header("ETag", "\"etag-1\"")
        .header(
            "Content-Range",
            &format!("bytes {first}-{last}/{}", body.len()),
        )
        .fault(pace);
    reply.status = 206;
    reply
}

#[test]
fn a_capped_object_is_fetched_in_signed_parallel_ranges() {
    let zip = {
        let noise = noise(6 << 20, 7);
        zip_of(&[
            Entry::File("noise.bin", &noise),
            Entry::File("VERSION", b"s3"),
        ])
    };
    let body = zip.clone();
    // Every request reaches `extra` only once its signature checked out.
    let server = s3_endpoint_with(
        REGION,
        vec![],
        move |req, _| Some(capped_object(req, &body)),
        false,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    Deploy::new("s3://releases/app.zip")
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .fetch_options(FetchOptions {
            connections: 4,
            ..s3_options(&server, SECRET)
        })
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"s3");
    let requests = server.requests();
    let parts: Vec<_> = requests
        .iter()
        .filter_map(|r| r.header("range"))
        .filter(|r| !r.ends_with('-'))
        .collect();
    assert!(parts.len() >= 2, "{requests:?}");
    for req in &requests {
        assert_eq!(verify(req, REGION), Ok(()), "{req:?}");
    }
}

#[test]
fn mirrors_mix_s3_and_https_and_the_cache_serves_s3_packages() {
    let zip = app_zip("mirrored");
    let s3 = s3_endpoint(vec![("app.zip", zip.clone())]);
    let https = TestServer::serving(zip.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");

    // An s3:// location that fails, then an https:// mirror.
    let report = Deploy::new("s3://releases/missing.zip")
        .unwrap()
        .mirror(&https.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .fetch_options(s3_options(&s3, SECRET))
        .dest(tmp.path().join("a"))
        .run()
        .unwrap();
    assert_eq!(report.mirrors_skipped.len(), 1);
    assert!(
        report.mirrors_skipped[0].starts_with("s3://releases/missing.zip: HTTP status 404"),
        "{:?}",
        report.mirrors_skipped
    );

    // An https:// location that fails, then an s3:// mirror, into the cache.
    let gone = TestServer::start(|_, _| Reply::status(404));
    let report = Deploy::new(&gone.url("/app.zip"))
        .unwrap()
        .mirror("s3://releases/app.zip")
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .cache(&cache)
        .fetch_options(s3_options(&s3, SECRET))
        .dest(tmp.path().join("b"))
        .run()
        .unwrap();
    assert_eq!(report.source, "s3://releases/app.zip");
    let s3_requests = s3.requests().len();

    // The cache serves the next deploy of that digest: no S3 request.
    let report = Deploy::new("s3://releases/app.zip")
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .cache(&cache)
        .fetch_options(s3_options(&s3, SECRET))
        .dest(tmp.path().join("c"))
        .run()
        .unwrap();
    assert!(report.cache_hit);
    assert_eq!(s3.requests().len(), s3_requests);
    assert_eq!(read(tmp.path().join("c/VERSION")), b"mirrored");
}

#[test]
fn an_https_endpoint_behind_a_private_ca() {
    let zip = app_zip("tls");
    let server = s3_endpoint_with(REGION, vec![("app.zip", zip.clone())], |_, _| None, true);
    let tmp = tempfile::tempdir().unwrap();
    let mut options = s3_options(&server, SECRET);
    options.root_certs_pem = vec![test_ca_pem()];
    assert!(server.url("/").starts_with("https://"));
    Deploy::new("s3://releases/app.zip")
        .unwrap()
        .sha256(&sha(&zip))
        .unwrap()
        .fetch_options(options)
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(read(tmp.path().join("app/VERSION")), b"tls");
}

// ---------------------------------------------------------------------------
// The CLI: credentials from each source of the chain.
// ---------------------------------------------------------------------------

/// The CLI with a clean environment: HOME is an empty temp dir (no shared
/// AWS files of the host) and instance metadata is off unless a test
/// points it at its own server.
fn cli(home: &Path) -> Command {
    let mut cmd = common::cli::command();
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", REGION);
    cmd
}

struct Out {
    code: i32,
    text: String,
}

fn run(cmd: &mut Command) -> Out {
    let run = common::cli::run(cmd);
    Out {
        code: run.code,
        text: run.stdout + &run.stderr,
    }
}

/// Deploys `s3://releases/app.zip` from `server` with `cmd`'s credentials.
fn cli_deploy(cmd: &mut Command, server: &TestServer, dest: &Path, zip: &[u8]) -> Out {
    run(cmd
        .args([
            "--url",
            "s3://releases/app.zip",
            "--sha256",
            &sha(zip),
            "--s3-endpoint",
            &server.url(""),
            "--json",
            "--retries",
            "0",
            "--dest",
        ])
        .arg(dest))
}

#[test]
fn cli_environment_credentials_never_reach_the_output() {
    let zip = app_zip("cli");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let home = tempfile::tempdir().unwrap();
    let dest = home.path().join("app");
    let with_keys = |secret: &str| {
        let mut cmd = cli(home.path());
        cmd.env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", TOKEN);
        cmd
    };

    let failed = cli_deploy(
        &mut with_keys("not-the-secret-key-42"),
        &server,
        &dest,
        &zip,
    );
    assert_eq!(failed.code, 3, "{}", failed.text);
    assert!(failed.text.contains("403"), "{}", failed.text);
    assert!(
        !failed.text.contains("not-the-secret-key-42"),
        "{}",
        failed.text
    );
    assert_no_secret(&failed.text);

    let done = cli_deploy(&mut with_keys(SECRET), &server, &dest, &zip);
    assert_eq!(done.code, 0, "{}", done.text);
    assert!(
        done.text.contains("\"source\":\"s3://releases/app.zip\""),
        "{}",
        done.text
    );
    assert_no_secret(&done.text);

    let status = run(with_keys(SECRET)
        .args(["--status", "--json", "--dest"])
        .arg(&dest));
    assert_eq!(status.code, 0, "{}", status.text);
    assert!(
        status.text.contains("s3://releases/app.zip"),
        "{}",
        status.text
    );
    assert_no_secret(&status.text);
    assert_no_secret_in_files(home.path());

    // ZIPDEPLOY_S3_ENDPOINT is the flag's fallback.
    let other = home.path().join("other");
    let by_env = run(with_keys(SECRET)
        .env("ZIPDEPLOY_S3_ENDPOINT", server.url(""))
        .args(["--url", "s3://releases/app.zip", "--dest"])
        .arg(&other));
    assert_eq!(by_env.code, 0, "{}", by_env.text);
}

#[test]
fn cli_credentials_from_a_profile_with_its_region() {
    let zip = app_zip("profile");
    let server = s3_endpoint_with(
        "ap-south-1",
        vec![("app.zip", zip.clone())],
        |_, _| None,
        false,
    );
    let home = tempfile::tempdir().unwrap();
    let credentials = home.path().join("creds");
    let config = home.path().join("conf");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\
             [ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n\
             aws_session_token = {TOKEN}\n"
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile ci]\nregion = ap-south-1\n").unwrap();
    let mut cmd = cli(home.path());
    cmd.env_remove("AWS_REGION")
        .env("AWS_PROFILE", "ci")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_CONFIG_FILE", &config);
    let out = cli_deploy(&mut cmd, &server, &home.path().join("app"), &zip);
    assert_eq!(out.code, 0, "{}", out.text);
}

/// A request a [`credential_server`] saw, body included.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A small HTTP server on 127.0.0.1 for the credential services: it reads
/// request bodies (STS is a POST) and answers with `handler`.
fn credential_server(
    handler: impl Fn(&Seen) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or_default().to_string();
            let path = words.next().unwrap_or_default().to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
            let length = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Seen {
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, answer) = handler(&request);
            seen.lock().unwrap().push(request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, log)
}

fn credentials_json() -> String {
    format!(
        r#"{{"AccessKeyId":"{KEY_ID}","SecretAccessKey":"{SECRET}","Token":"{TOKEN}","Expiration":"2030-01-01T00:00:00Z"}}"#
    )
}

#[test]
fn cli_credentials_from_the_container_endpoint_with_a_token_file() {
    let zip = app_zip("container");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let (base, seen) = credential_server(|req| {
        if req.path == "/v2/credentials/task" && req.header("authorization") == Some("pod-token-1")
        {
            (200, credentials_json())
        } else {
            (401, String::new())
        }
    });
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "pod-token-1\n").unwrap();
    let mut cmd = cli(home.path());
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{base}/v2/credentials/task"),
    )
    .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-this-one")
    .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    let out = cli_deploy(&mut cmd, &server, &home.path().join("app"), &zip);
    assert_eq!(out.code, 0, "{}", out.text);
    assert_no_secret(&out.text);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn container_credentials_on_loopback_never_go_through_a_proxy() {
    // A proxy set for https URLs: the loopback container endpoint is this
    // host's, and its token must go neither through a proxy nor to the
    // proxy's own loopback.
    let (proxy, proxied) = credential_server(|_| (502, String::new()));
    let zip = app_zip("container");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let (base, seen) = credential_server(|req| {
        if req.header("authorization") == Some("pod-token-2") {
            (200, credentials_json())
        } else {
            (401, String::new())
        }
    });
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path());
    cmd.env("HTTPS_PROXY", &proxy)
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{base}/v2/credentials/task"),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token-2");
    let out = cli_deploy(&mut cmd, &server, &home.path().join("app"), &zip);
    assert_eq!(out.code, 0, "{}", out.text);
    assert!(proxied.lock().unwrap().is_empty(), "went through the proxy");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn sigterm_stops_the_cli_within_a_second_while_a_credential_service_stalls() {
    // The container endpoint takes the connection and never answers.
    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", stalled.local_addr().unwrap());
    let (connected, asked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in stalled.incoming() {
            held.push(stream);
            let _ = connected.send(());
        }
    });
    let zip = app_zip("container");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path());
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{base}/creds"),
    )
    .args(["--url", "s3://releases/app.zip", "--sha256", &sha(&zip)])
    .arg("--s3-endpoint")
    .arg(server.url(""))
    .arg("--dest")
    .arg(home.path().join("app"))
    .stderr(std::process::Stdio::piped());
    let mut cli = cmd.spawn().unwrap();
    asked
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the credential service was asked");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let signalled = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &cli.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = cli.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > std::time::Duration::from_secs(30) {
            let _ = cli.kill();
            panic!("still running");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let took = signalled.elapsed();
    let mut stderr = String::new();
    cli.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        took < std::time::Duration::from_secs(1),
        "took {took:?}; {stderr}"
    );
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(!home.path().join("app").exists());
}

#[test]
fn cli_credentials_from_instance_metadata_v2() {
    let zip = app_zip("imds");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let (base, seen) = credential_server(|req| {
        let token_ok = req.header("x-aws-ec2-metadata-token") == Some("imds-session");
        match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token")
                if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                (200, "imds-session".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => {
                (200, "deploy-role".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/deploy-role") if token_ok => {
                (200, credentials_json())
            }
            _ => (401, String::new()),
        }
    });
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path());
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &base);
    let out = cli_deploy(&mut cmd, &server, &home.path().join("app"), &zip);
    assert_eq!(out.code, 0, "{}", out.text);
    assert_eq!(seen.lock().unwrap().len(), 3);

    // Off EC2 (nothing answers) the failure names the chain, quickly.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cmd = cli(home.path());
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &nowhere);
    let out = cli_deploy(&mut cmd, &server, &home.path().join("other"), &zip);
    assert_eq!(out.code, 3, "{}", out.text);
    assert!(out.text.contains("no AWS credentials"), "{}", out.text);
}

#[test]
fn cli_credentials_from_web_identity_through_sts() {
    let zip = app_zip("irsa");
    let server = s3_endpoint(vec![("app.zip", zip.clone())]);
    let (sts, seen) = credential_server(|req| {
        if req.method == "POST"
            && req.body.contains("Action=AssumeRoleWithWebIdentity")
            && req.body.contains("WebIdentityToken=eyJhbGciOi.jwt")
        {
            let xml = format!(
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
                 <Credentials><AccessKeyId>{KEY_ID}</AccessKeyId>\
                 <SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken>\
                 </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            );
            (200, xml)
        } else {
            (
                400,
                "<Error><Code>InvalidIdentityToken</Code></Error>".into(),
            )
        }
    });
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOi.jwt\n").unwrap();
    let mut cmd = cli(home.path());
    cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/deploy")
        .env("AWS_ROLE_SESSION_NAME", "pod-1")
        .env("AWS_ENDPOINT_URL_STS", &sts);
    let out = cli_deploy(&mut cmd, &server, &home.path().join("app"), &zip);
    assert_eq!(out.code, 0, "{}", out.text);
    assert_no_secret(&out.text);
    let request = seen.lock().unwrap()[0].clone();
    assert!(
        request.body.contains("RoleSessionName=pod-1"),
        "{request:?}"
    );
}
