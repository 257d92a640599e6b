//! `s3://bucket/key` package locations: where the object is (endpoint,
//! addressing style, region) and how each request to it is signed.
//!
//! An S3 location becomes an `https://` URL (or the custom endpoint's
//! `http(s)://` URL) fetched by the same code as any other URL, so digests,
//! signatures, the cache, mirrors, resume and streaming extraction work
//! alike. Each request (each redirect hop, each retry) gets fresh SigV4
//! headers (`sigv4`), and only when it goes to the endpoint's origin.
//! Nothing here runs unless a location is `s3://`.
//!
//! Credentials come from the provider chain in `credentials`, in the
//! order AWS tools use; the variables and files read are listed in the
//! README.

mod credentials;
mod remote;
pub(crate) mod sigv4;

use std::time::SystemTime;

use url::Url;

use crate::error::{Error, NetworkKind, Result};
use crate::proxy::ProxyConfig;

/// The region used when none is configured anywhere.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An object in an S3 bucket: `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    bucket: String,
    key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`. The key is taken as written (no percent
    /// decoding), as the AWS CLI does; `.` and `..` segments are refused.
    ///
    /// ```
    /// let location = zipdeploy::s3::S3Location::parse("s3://releases/app/1.2.zip")?;
    /// assert_eq!((location.bucket(), location.key()), ("releases", "app/1.2.zip"));
    /// # Ok::<(), zipdeploy::Error>(())
    /// ```
    pub fn parse(location: &str) -> Result<S3Location> {
        let invalid = |reason: &str| Error::InvalidUrl {
            // `s3a://KEY:SECRET@bucket/…` (Hadoop's form) is refused: shown
            // without its user info.
            url: crate::fetch::redact_str(location),
            reason: reason.into(),
        };
        let rest = location
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
            .map(|_| &location[5..])
            .ok_or_else(|| invalid("not an s3:// location"))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| invalid("no object key (s3://bucket/key)"))?;
        let bucket_ok = (1..=255).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !bucket_ok {
            return Err(invalid("bad bucket name"));
        }
        if key.is_empty() {
            return Err(invalid("no object key (s3://bucket/key)"));
        }
        if key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(invalid("`.` or `..` in the object key"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object whose key is this one's plus `suffix` (`app.zip.sha256`).
    pub(crate) fn with_suffix(&self, suffix: &str) -> S3Location {
        S3Location {
            bucket: self.bucket.clone(),
            key: format!("{}{suffix}", self.key),
        }
    }

    /// Whether the bucket name can be a DNS label of a virtual host (and of
    /// a TLS wildcard certificate): no dots, no upper case, no underscore.
    fn virtual_host_ok(&self) -> bool {
        (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.bucket.starts_with('-')
            && !self.bucket.ends_with('-')
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Static AWS credentials: an access key, and a session token when they
/// are temporary. `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// How `s3://` locations are reached. The defaults read the standard AWS
/// variables and files (see the README); every field overrides them.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// An S3-compatible endpoint (MinIO, Ceph, R2, …), `http(s)://host[:port]`.
    /// Default: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS.
    /// A custom endpoint is addressed path-style.
    pub endpoint: Option<Url>,
    /// Path-style addressing (`https://s3.REGION.amazonaws.com/bucket/key`)
    /// on AWS too. Default false: virtual-hosted style
    /// (`https://bucket.s3.REGION.amazonaws.com/key`), except for bucket
    /// names that cannot be a host name.
    pub path_style: bool,
    /// The region requests are signed for. Default: `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else the profile's `region`, else `us-east-1`.
    pub region: Option<String>,
    /// Credentials to use instead of looking them up.
    pub credentials: Option<Credentials>,
    /// The STS endpoint for web identity credentials. Default:
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else
    /// `https://sts.REGION.amazonaws.com`.
    pub sts_endpoint: Option<Url>,
    /// For tests only: the base that `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
    /// is relative to, instead of `http://169.254.170.2`.
    pub container_base: Option<Url>,
    /// For tests only: the instance metadata service, instead of
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` or `http://169.254.169.254`.
    pub imds_base: Option<Url>,
}

/// Parses an `http(s)://` endpoint URL for [`S3Options`].
pub fn parse_endpoint(endpoint: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: crate::fetch::redact_str(endpoint),
        reason,
    };
    let url = Url::parse(endpoint.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "an endpoint is an http(s)://host[:port] URL".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(invalid("an endpoint has no credentials or query".into()));
    }
    Ok(url)
}

/// Signs the requests of one S3 fetch: those to its endpoint's origin.
#[derive(Debug)]
pub(crate) struct Signer {
    credentials: Credentials,
    region: String,
    origin: url::Origin,
}

impl Signer {
    /// The SigV4 headers for a request to `hop`, or none when `hop` is not
    /// on the endpoint's origin (a redirect elsewhere gets no credentials).
    pub(crate) fn headers_for(&self, hop: &Url) -> Vec<(String, String)> {
        if hop.origin() != self.origin {
            return Vec::new();
        }
        sigv4::sign_s3_get(&self.credentials, &self.region, hop, SystemTime::now())
    }
}

/// The URL of `location` and the signer of its requests, with settings
/// and credentials from `options` and the process environment; credentials
/// from a service are fetched through `proxies`.
///
/// Looking credentials up may wait on a service (seconds; a stalled one,
/// up to its timeouts), so it runs on a helper thread while the caller's
/// calls `heartbeat` every [`crate::http::TICK`]: a deploy can always be
/// stopped. An error from the heartbeat abandons the lookup, whose thread
/// ends at the service's timeout.
pub(crate) fn prepare(
    location: &S3Location,
    options: &S3Options,
    proxies: &ProxyConfig,
    heartbeat: &mut dyn FnMut() -> Result<()>,
) -> Result<(Url, Signer)> {
    use std::sync::mpsc::{self, RecvTimeoutError};
    let (send, prepared) = mpsc::channel();
    let (location, options, proxies) = (location.clone(), options.clone(), proxies.clone());
    let shown = location.to_string();
    std::thread::Builder::new()
        .name("zipdeploy-s3-credentials".into())
        .spawn(move || {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let _ = send.send(prepare_with(&location, &options, &proxies, &env));
        })
        .map_err(|e| Error::Network {
            url: shown.clone(),
            reason: format!("cannot start a thread to look credentials up: {e}"),
            kind: NetworkKind::Other,
        })?;
    loop {
        match prepared.recv_timeout(crate::http::TICK) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => heartbeat()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Network {
                    url: shown,
                    reason: "the credential lookup ended unexpectedly".into(),
                    kind: NetworkKind::Credentials,
                })
            }
        }
    }
}

/// Reads the environment through `env`.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn prepare_with(
    location: &S3Location,
    options: &S3Options,
    proxies: &ProxyConfig,
    env: Env<'_>,
) -> Result<(Url, Signer)> {
    let shown = location.to_string();
    let profile = credentials::Profile::load(env);
    let region = match options.region.clone() {
        Some(region) => region,
        None => env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| profile.get("region").map(str::to_string))
            .unwrap_or_else(|| DEFAULT_REGION.to_string()),
    };
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::Config(format!("bad AWS region {region:?}")));
    }
    let endpoint = match &options.endpoint {
        // Checked again: a URL set directly may carry user info.
        Some(url) => Some(parse_endpoint(url.as_str())?),
        None => env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .map(|e| parse_endpoint(&e))
            .transpose()?,
    };
    let url = object_url(location, endpoint.as_ref(), options.path_style, &region)?;
    let credentials = match &options.credentials {
        Some(c) => c.clone(),
        None => {
            credentials::lookup(env, &profile, options, &region, proxies).map_err(|reason| {
                Error::Network {
                    url: shown.clone(),
                    reason,
                    kind: NetworkKind::Credentials,
                }
            })?
        }
    };
    let signer = Signer {
        credentials,
        region,
        origin: url.origin(),
    };
    Ok((url, signer))
}

/// The `http(s)://` URL of an object.
fn object_url(
    location: &S3Location,
    endpoint: Option<&Url>,
    path_style: bool,
    region: &str,
) -> Result<Url> {
    let bucket = sigv4::uri_encode(&location.bucket, false);
    let key = sigv4::uri_encode(&location.key, true);
    let text = match endpoint {
        Some(base) => {
            let mut root = base.as_str().trim_end_matches('/').to_string();
            if base.path() == "/" {
                root = format!("{}://{}", base.scheme(), sigv4::host_header(base));
            }
            format!("{root}/{bucket}/{key}")
        }
        None if path_style || !location.virtual_host_ok() => {
            format!("https://s3.{region}.amazonaws.com/{bucket}/{key}")
        }
        None => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
    };
    Url::parse(&text).map_err(|e| Error::InvalidUrl {
        url: location.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str) -> S3Location {
        S3Location::parse(text).unwrap()
    }

    #[test]
    fn parses_locations() {
        let l = loc("s3://my-bucket/dir/app 1.zip");
        assert_eq!((l.bucket(), l.key()), ("my-bucket", "dir/app 1.zip"));
        assert_eq!(l.to_string(), "s3://my-bucket/dir/app 1.zip");
        assert_eq!(loc("S3://b/k").bucket(), "b");
        for bad in [
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://user:pw@bucket/key",
            "s3://bucket/a/../key",
            "s3://bucket/./key",
            "https://bucket/key",
        ] {
            let err = S3Location::parse(bad).unwrap_err();
            assert_eq!(err.code(), 20, "{bad}: {err}");
        }
        // Hadoop's s3a://KEY:SECRET@bucket/… form: refused, never shown.
        for bad in [
            "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/key",
            "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket",
            "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bu cket/key",
        ] {
            let shown = S3Location::parse(bad).unwrap_err().to_string();
            assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
            assert!(!shown.contains("AKIAEXAMPLE"), "{shown}");
        }
    }

    #[test]
    fn addresses_aws_and_custom_endpoints() {
        let l = loc("s3://releases/app/v1 +.zip");
        assert_eq!(
            object_url(&l, None, false, "eu-west-1").unwrap().as_str(),
            "https://releases.s3.eu-west-1.amazonaws.com/app/v1%20%2B.zip"
        );
        assert_eq!(
            object_url(&l, None, true, "eu-west-1").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/releases/app/v1%20%2B.zip"
        );
        let dotted = loc("s3://releases.example.com/app.zip");
        assert_eq!(
            object_url(&dotted, None, false, "us-east-1")
                .unwrap()
                .as_str(),
            "https://s3.us-east-1.amazonaws.com/releases.example.com/app.zip"
        );
        let minio = parse_endpoint("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            object_url(&l, Some(&minio), false, "us-east-1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/releases/app/v1%20%2B.zip"
        );
        let prefixed = parse_endpoint("https://gw.example/s3/").unwrap();
        assert_eq!(
            object_url(&l, Some(&prefixed), false, "us-east-1")
                .unwrap()
                .as_str(),
            "https://gw.example/s3/releases/app/v1%20%2B.zip"
        );
        assert!(parse_endpoint("ftp://x").is_err());
        let err = parse_endpoint("https://u:hunter22@x").unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn signs_only_requests_to_the_endpoint_origin() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-key-1".to_string()),
            "AWS_REGION" => Some("eu-central-1".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".to_string()),
            "HOME" => Some("/nonexistent".to_string()),
            _ => None,
        };
        let (url, signer) = prepare_with(
            &loc("s3://b/app.zip"),
            &S3Options::default(),
            &ProxyConfig::none(),
            &env,
        )
        .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/b/app.zip");
        let signed = signer.headers_for(&url);
        let auth = &signed.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(auth.contains("/eu-central-1/s3/aws4_request"), "{auth}");
        let elsewhere = Url::parse("http://127.0.0.1:10/b/app.zip").unwrap();
        assert!(signer.headers_for(&elsewhere).is_empty());
        assert_eq!(format!("{:?}", signer.credentials), "Credentials(***)");
    }

    #[test]
    fn refuses_an_endpoint_with_user_info_set_directly() {
        let options = S3Options {
            endpoint: Some(Url::parse("http://minio:hunter22@127.0.0.1:9").unwrap()),
            credentials: Some(Credentials::new("a", "b", None)),
            ..S3Options::default()
        };
        let err =
            prepare_with(&loc("s3://b/k"), &options, &ProxyConfig::none(), &|_| None).unwrap_err();
        assert_eq!(err.code(), 20);
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn refuses_a_region_that_would_change_the_host() {
        let options = S3Options {
            region: Some("x.evil.example/".into()),
            credentials: Some(Credentials::new("a", "b", None)),
            ..S3Options::default()
        };
        let err =
            prepare_with(&loc("s3://b/k"), &options, &ProxyConfig::none(), &|_| None).unwrap_err();
        assert!(err.to_string().contains("region"), "{err}");
    }
}
