//! `s3://` deploys against moto's S3 server (a real implementation of the
//! S3 API, PyPI `moto[server]`) on 127.0.0.1, with IAM authentication on:
//! moto then recomputes each request's SigV4 signature with botocore and
//! refuses a wrong one, so these tests check the signing against AWS's own
//! Python implementation.
//!
//! Needs `python3 -m moto.server` (`pip install 'moto[server]'`); the test
//! fails, with that hint, when it is missing.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::s3::{Credentials, S3Options};
use zipdeploy::{Deploy, Error, FetchOptions, Sha256Digest};

/// A moto server on 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    base: String,
}

impl Moto {
    fn start() -> Moto {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 not found; these tests need `pip install 'moto[server]'`");
        let mut moto = Moto {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                let mut stderr = String::new();
                use std::io::Read;
                let _ = moto
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!(
                    "moto's server exited ({status}); these tests need \
                     `pip install 'moto[server]'`:\n{stderr}"
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto's server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .build(),
        )
    }

    /// An unauthenticated setup call (moto checks nothing until
    /// [`Moto::require_signatures`]); `service` routes it.
    fn call(&self, method: &str, path: &str, service: &str, body: &[u8]) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIASETUP/20250101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let url = format!("{}{path}", self.base);
        let agent = Moto::agent();
        let response = match method {
            "PUT" => agent.put(&url).header("Authorization", &auth).send(body),
            _ => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "{method} {path}: {text}");
        text
    }

    fn iam(&self, params: &[(&str, &str)]) -> String {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Version", "2010-05-08")
            .extend_pairs(params)
            .finish();
        self.call("POST", "/", "iam", form.as_bytes())
    }

    /// A user allowed `s3:*`, and its access key.
    fn deployer(&self) -> (String, String) {
        self.iam(&[("Action", "CreateUser"), ("UserName", "deployer")]);
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "deployer"),
            ("PolicyName", "read"),
            ("PolicyDocument", policy),
        ]);
        let xml = self.iam(&[("Action", "CreateAccessKey"), ("UserName", "deployer")]);
        let field = |tag: &str| {
            let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
            let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
            xml[start..end].to_string()
        };
        (field("AccessKeyId"), field("SecretAccessKey"))
    }

    /// From now on every request must be signed by a known key.
    fn require_signatures(&self) {
        let mut response = Moto::agent()
            .post(&format!("{}/moto-api/reset-auth", self.base))
            .send("0")
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(text.contains("ok"), "{text}");
    }

    fn options(&self, id: &str, secret: &str) -> FetchOptions {
        FetchOptions {
            retries: 0,
            s3: S3Options {
                endpoint: Some(self.base.parse().unwrap()),
                region: Some("us-east-1".into()),
                credentials: Some(Credentials::new(id, secret, None)),
                ..S3Options::default()
            },
            ..FetchOptions::default()
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn moto_checks_the_signatures_of_s3_deploys() {
    let moto = Moto::start();
    let zip = app_zip("moto");
    let hex = Sha256Digest::of(&zip).to_hex();
    let (id, secret) = moto.deployer();
    moto.call("PUT", "/releases", "s3", b"");
    moto.call("PUT", "/releases/app/v%201.zip", "s3", &zip);
    moto.call(
        "PUT",
        "/releases/app/v%201.zip.sha256",
        "s3",
        format!("{hex}  v 1.zip\n").as_bytes(),
    );
    moto.require_signatures();

    let tmp = tempfile::tempdir().unwrap();
    let err = Deploy::new("s3://releases/app/v 1.zip")
        .unwrap()
        .sha256(&hex)
        .unwrap()
        .fetch_options(moto.options(&id, "not-the-secret"))
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 403, .. }),
        "{err}"
    );
    assert!(!tmp.path().join("app").exists());

    let report = Deploy::new("s3://releases/app/v 1.zip")
        .unwrap()
        .sha256_from("s3://releases/app/v 1.zip.sha256")
        .unwrap()
        .fetch_options(moto.options(&id, &secret))
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), hex);
    assert_eq!(read(tmp.path().join("app/VERSION")), b"moto");
}
