//! The credential sources that are HTTP services: the container endpoint
//! (JSON), the EC2 instance metadata service (IMDSv2: token, role, JSON) and
//! STS `AssumeRoleWithWebIdentity` (XML). The answers are parsed by hand:
//! only a few string fields are needed.
//!
//! These requests are short (small answers, short timeouts) and run on the
//! caller's thread before the download starts. Errors name the service and
//! the HTTP status, never a token or a response body.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::Credentials;
use crate::proxy::ProxyConfig;

/// The instance metadata service.
pub(crate) const IMDS_BASE: &str = "http://169.254.169.254";

/// What `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is relative to.
const CONTAINER_BASE: &str = "http://169.254.170.2";

/// Largest answer read from a credential service.
const MAX_ANSWER: u64 = 64 << 10;

/// Time limits of the instance metadata service: it is local to the
/// instance, and off EC2 it does not answer at all.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Time limit of each request to the container endpoint and STS.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one request; returns the status and the (text) body.
fn call(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    form: Option<String>,
    timeout: Duration,
    proxies: &ProxyConfig,
) -> Result<(u16, String), String> {
    let shown = crate::fetch::redact_url(url);
    // Chosen as for the package (curl's rules), never by ureq's own reading
    // of the environment; the metadata services, on this host or its own
    // link, never through a proxy (it would reach its own loopback).
    let proxy = match on_this_host_or_link(url) {
        true => None,
        false => proxies
            .proxy_for(url)
            .map(crate::proxy::ureq_proxy)
            .transpose()
            .map_err(|e| e.to_string())?,
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout * 2))
        .proxy(proxy);
    let agent = ureq::Agent::new_with_config(config.build());
    let fail = |e: ureq::Error| format!("{shown}: {e}");
    let response = match (method, form) {
        ("PUT", _) => {
            let mut request = agent.put(url.as_str());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send_empty()
        }
        (_, Some(form)) => {
            let mut request = agent
                .post(url.as_str())
                .header("Content-Type", "application/x-www-form-urlencoded");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send(form)
        }
        _ => {
            let mut request = agent.get(url.as_str());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
    };
    let mut response = response.map_err(fail)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
        .map_err(fail)?;
    Ok((status, body))
}

/// The container endpoint's URL: the relative URI on the fixed base, else
/// the full URI, which over plain http must be on the host or the task's
/// link (SDKs allow no other, so a token cannot be sent elsewhere).
/// Whether `url` names this host (loopback, `localhost`) or an address of
/// its own link (169.254.0.0/16, fe80::/10, EKS's fd00:ec2::23).
fn on_this_host_or_link(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.segments()[0] & 0xffc0 == 0xfe80
                || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]
        }
        None => false,
    }
}

pub(crate) fn container_url(
    full: Option<&str>,
    relative: Option<&str>,
    base: Option<&Url>,
) -> Result<Url, String> {
    if let Some(relative) = relative {
        let base = match base {
            Some(b) => b.as_str().trim_end_matches('/').to_string(),
            None => CONTAINER_BASE.to_string(),
        };
        let relative = relative.trim_start_matches('/');
        return Url::parse(&format!("{base}/{relative}"))
            .map_err(|_| "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a path".to_string());
    }
    let full = full.unwrap_or_default();
    let url = Url::parse(full)
        .map_err(|_| "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL".to_string())?;
    let allowed = match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => {
                ip.is_loopback()
                    || ip.octets() == [169, 254, 170, 2]
                    || ip.octets() == [169, 254, 170, 23]
            }
            Some(url::Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]
            }
            None => false,
        },
        _ => false,
    };
    if !allowed {
        return Err(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http on a loopback or \
             container endpoint address"
                .into(),
        );
    }
    Ok(url)
}

/// Credentials from the container endpoint at `url`, with its
/// `Authorization` token if there is one.
pub(crate) fn container(
    url: &Url,
    token: Option<&str>,
    proxies: &ProxyConfig,
) -> Result<Credentials, String> {
    let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
    let (status, body) = call("GET", url, &headers, None, SERVICE_TIMEOUT, proxies)?;
    if status != 200 {
        return Err(format!(
            "HTTP status {status} from {}",
            crate::fetch::redact_url(url)
        ));
    }
    credentials_json(&body)
}

/// Credentials of the instance's role from IMDSv2 at `base`.
pub(crate) fn instance_metadata(base: &Url, proxies: &ProxyConfig) -> Result<Credentials, String> {
    let at = |path: &str| {
        Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))
            .map_err(|e| e.to_string())
    };
    let answer = |what: &str, (status, body): (u16, String)| {
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("HTTP status {status} for the {what}"))
        }
    };
    let token = answer(
        "session token",
        call(
            "PUT",
            &at("/latest/api/token")?,
            &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
            None,
            IMDS_TIMEOUT,
            proxies,
        )?,
    )?;
    let token = token.trim();
    let auth = [("X-aws-ec2-metadata-token", token)];
    let roles = answer(
        "role name",
        call(
            "GET",
            &at("/latest/meta-data/iam/security-credentials/")?,
            &auth,
            None,
            IMDS_TIMEOUT,
            proxies,
        )?,
    )?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("no IAM role attached to the instance")?;
    let role = super::sigv4::uri_encode(role, false);
    let body = answer(
        "role credentials",
        call(
            "GET",
            &at(&format!(
                "/latest/meta-data/iam/security-credentials/{role}"
            ))?,
            &auth,
            None,
            IMDS_TIMEOUT,
            proxies,
        )?,
    )?;
    credentials_json(&body)
}

/// Trades the web identity token in `token_file` for credentials of `role`
/// with STS at `sts` (an unsigned `AssumeRoleWithWebIdentity`).
pub(crate) fn web_identity(
    sts: &Url,
    token_file: &Path,
    role: &str,
    session: &str,
    proxies: &ProxyConfig,
) -> Result<Credentials, String> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}", token_file.display()))?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role)
        .append_pair("RoleSessionName", session)
        .append_pair("WebIdentityToken", token.trim())
        .finish();
    let (status, body) = call(
        "POST",
        sts,
        &[("Accept", "application/xml")],
        Some(form),
        SERVICE_TIMEOUT,
        proxies,
    )?;
    if status != 200 {
        let code = xml_text(&body, "Code")
            .filter(|c| c.len() < 100 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        return Err(format!(
            "HTTP status {status}{code} from STS {}",
            crate::fetch::redact_url(sts)
        ));
    }
    let field = |tag: &str| xml_text(&body, tag).ok_or(format!("no {tag} in the STS answer"));
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
    ))
}

/// `AccessKeyId`, `SecretAccessKey` and `Token` of a JSON credentials
/// document (container endpoint, IMDS).
fn credentials_json(body: &str) -> Result<Credentials, String> {
    let field = |key: &str| json_string(body, key).ok_or(format!("no {key} in the answer"));
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        json_string(body, "Token"),
    ))
}

/// The string value of `"key"` in a JSON object (the first one).
fn json_string(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        from += at + needle.len();
        let rest = text[from..].trim_start();
        let Some(value) = rest.strip_prefix(':') else {
            continue;
        };
        let mut chars = value.trim_start().strip_prefix('"')?.chars();
        let mut out = String::new();
        loop {
            match chars.next()? {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
    }
    None
}

/// The text of the first `<tag>…</tag>` element, entities decoded.
fn xml_text(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(
        text[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A request a [`serve`] server saw: method, path, headers, body.
    #[derive(Debug, Clone)]
    pub(in crate::s3) struct Seen {
        pub(in crate::s3) method: String,
        pub(in crate::s3) path: String,
        headers: Vec<(String, String)>,
        pub(in crate::s3) body: String,
    }

    impl Seen {
        pub(in crate::s3) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    pub(in crate::s3) type Seens = Arc<Mutex<Vec<Seen>>>;

    /// A tiny HTTP/1.1 server on 127.0.0.1 answering with `handler`.
    pub(in crate::s3) fn serve(
        handler: impl Fn(&Seen) -> (u16, String) + Send + 'static,
    ) -> (Url, Seens) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen: Seens = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let request = Seen {
                    method,
                    path,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                };
                let (status, body) = handler(&request);
                log.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, seen)
    }

    pub(in crate::s3) const JSON: &str = r#"{"Code":"Success","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"se\/cret\u0041","Token":"tok\"en","Expiration":"2030-01-01T00:00:00Z"}"#;

    #[test]
    fn metadata_services_on_this_host_or_link_are_never_proxied() {
        for local in [
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://169.254.170.2/v2",
            "http://[::1]/creds",
            "http://[fd00:ec2::23]/v1",
        ] {
            let url = Url::parse(local).unwrap();
            assert!(on_this_host_or_link(&url), "{local}");
        }
        // Elsewhere the proxy is chosen with curl's rules, from the
        // deploy's settings.
        let (proxy, seen) = serve(|_| (502, String::new()));
        let proxies = ProxyConfig {
            https: Some(proxy.to_string()),
            ..ProxyConfig::none()
        };
        let sts = Url::parse("https://sts.us-east-1.amazonaws.com/").unwrap();
        assert!(!on_this_host_or_link(&sts));
        call("GET", &sts, &[], None, Duration::from_secs(5), &proxies).unwrap_err();
        assert_eq!(seen.lock().unwrap()[0].method, "CONNECT");
    }

    #[test]
    fn container_endpoint_relative_to_the_overridden_base_with_a_token() {
        let (base, seen) = serve(|r| {
            if r.path == "/v2/credentials/abc" && r.header("authorization") == Some("Bearer t0k") {
                (200, JSON.into())
            } else {
                (403, "{}".into())
            }
        });
        let url = container_url(None, Some("/v2/credentials/abc"), Some(&base)).unwrap();
        let c = container(&url, Some("Bearer t0k"), &ProxyConfig::none()).unwrap();
        assert_eq!(
            c,
            Credentials::new("ASIAEXAMPLE", "se/cretA", Some("tok\"en".into()))
        );
        let err = container(&url, Some("wrong"), &ProxyConfig::none()).unwrap_err();
        assert!(err.contains("HTTP status 403"), "{err}");
        assert_eq!(seen.lock().unwrap()[0].method, "GET");
        let default = container_url(None, Some("/v2/x"), None).unwrap();
        assert_eq!(default.as_str(), "http://169.254.170.2/v2/x");
    }

    #[test]
    fn container_full_uri_must_stay_local_over_http() {
        for ok in [
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://creds.example/x",
        ] {
            assert!(container_url(Some(ok), None, None).is_ok(), "{ok}");
        }
        for bad in [
            "http://creds.example/x",
            "http://10.0.0.1/x",
            "file:///etc/passwd",
        ] {
            assert!(container_url(Some(bad), None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn imds_v2_token_then_role_then_credentials() {
        let (base, seen) = serve(|r| match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token")
                if r.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                (200, "imds-token".into())
            }
            (_, _) if r.header("x-aws-ec2-metadata-token") != Some("imds-token") => {
                (401, String::new())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") => (200, "web-role\n".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/web-role") => (200, JSON.into()),
            _ => (404, String::new()),
        });
        let c = instance_metadata(&base, &ProxyConfig::none()).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("tok\"en"));
        let methods: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.method.clone())
            .collect();
        assert_eq!(methods, ["PUT", "GET", "GET"]);
    }

    #[test]
    fn imds_that_refuses_is_an_error_naming_the_step() {
        let (base, _) = serve(|_| (403, "secret body".into()));
        let err = instance_metadata(&base, &ProxyConfig::none()).unwrap_err();
        assert!(
            err.contains("403") && err.contains("session token"),
            "{err}"
        );
        assert!(!err.contains("secret body"));
    }

    #[test]
    fn web_identity_trades_the_token_with_sts() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "eyJ.jwt.sig\n").unwrap();
        let (sts, seen) = serve(|r| {
            if r.method == "POST" && r.body.contains("WebIdentityToken=eyJ.jwt.sig") {
                (
                    200,
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
                     <Credentials><AccessKeyId>ASIASTS</AccessKeyId>\
                     <SecretAccessKey>sts&amp;secret</SecretAccessKey>\
                     <SessionToken>sts-token</SessionToken>\
                     <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>\
                     </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                        .into(),
                )
            } else {
                (
                    400,
                    "<ErrorResponse><Error><Code>InvalidIdentityToken</Code>\
                     <Message>token eyJ.bad</Message></Error></ErrorResponse>"
                        .into(),
                )
            }
        });
        let role = "arn:aws:iam::123456789012:role/app";
        let c = web_identity(&sts, &token_file, role, "s1", &ProxyConfig::none()).unwrap();
        assert_eq!(
            c,
            Credentials::new("ASIASTS", "sts&secret", Some("sts-token".into()))
        );
        let request = seen.lock().unwrap()[0].clone();
        assert!(request.body.contains("Action=AssumeRoleWithWebIdentity"));
        assert!(request
            .body
            .contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp"));
        assert!(request.body.contains("RoleSessionName=s1"));
        assert!(request.header("authorization").is_none(), "unsigned");

        std::fs::write(&token_file, "eyJ.bad").unwrap();
        let err = web_identity(&sts, &token_file, role, "s1", &ProxyConfig::none()).unwrap_err();
        assert!(err.contains("400 (InvalidIdentityToken)"), "{err}");
        assert!(!err.contains("eyJ"), "{err}");
    }
}
