//! Which proxy a request goes through, decided per request URL with curl's
//! rules, so that each redirect hop gets its own answer.
//!
//! curl reads (and so does [`ProxyConfig::from_env`]):
//!
//! - `http_proxy` for `http://` URLs — lower case only: a CGI program gets
//!   the client's `Proxy:` request header as `HTTP_PROXY` ("httpoxy");
//! - `https_proxy`, else `HTTPS_PROXY`, for `https://` URLs;
//! - `all_proxy`, else `ALL_PROXY`, when the scheme's own variable is unset;
//! - `no_proxy`, else `NO_PROXY`: hosts reached directly (see
//!   [`ProxyConfig::bypasses`]).
//!
//! A variable set to the empty string is set: it means "no proxy" and hides
//! the variables after it, as in curl.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{Error, Result};

/// Proxy settings, in the form of curl's environment variables.
///
/// [`crate::FetchOptions`] captures them from the environment when it is
/// created ([`ProxyConfig::from_env`]); set them explicitly to ignore the
/// environment:
///
/// ```
/// use zipdeploy::fetch::ProxyConfig;
/// let proxies = ProxyConfig {
///     https: Some("http://proxy.corp.example:3128".into()),
///     no_proxy: Some("localhost,.internal.example,10.0.0.0/8".into()),
///     ..ProxyConfig::none()
/// };
/// let url = url::Url::parse("https://pkg.internal.example/app.zip").unwrap();
/// assert_eq!(proxies.proxy_for(&url), None);
/// let url = url::Url::parse("https://example.com/app.zip").unwrap();
/// assert_eq!(proxies.proxy_for(&url), Some("http://proxy.corp.example:3128"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Proxy for `http://` URLs (`http_proxy`).
    pub http: Option<String>,
    /// Proxy for `https://` URLs (`https_proxy` / `HTTPS_PROXY`).
    pub https: Option<String>,
    /// Proxy for either scheme when its own is unset (`all_proxy` /
    /// `ALL_PROXY`).
    pub all: Option<String>,
    /// Hosts reached directly (`no_proxy` / `NO_PROXY`), separated by commas
    /// or spaces.
    pub no_proxy: Option<String>,
}

/// Proxy URLs may hold credentials: only the presence of each setting and
/// the `NO_PROXY` list are shown.
impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |p: &Option<String>| p.as_deref().map(shown_proxy);
        f.debug_struct("ProxyConfig")
            .field("http", &shown(&self.http))
            .field("https", &shown(&self.https))
            .field("all", &shown(&self.all))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// No proxy at all, whatever the environment says.
    pub fn none() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// The settings of the process environment, read as curl reads them.
    pub fn from_env() -> ProxyConfig {
        ProxyConfig::from_vars(|name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// The settings from `var` (a variable's value by name), read as curl
    /// reads them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let first = |names: [&str; 2]| names.iter().find_map(|name| var(name));
        ProxyConfig {
            http: var("http_proxy"),
            https: first(["https_proxy", "HTTPS_PROXY"]),
            all: first(["all_proxy", "ALL_PROXY"]),
            no_proxy: first(["no_proxy", "NO_PROXY"]),
        }
    }

    /// The proxy a request for `url` goes through, as given (it may hold
    /// credentials); `None` to connect directly.
    pub fn proxy_for(&self, url: &Url) -> Option<&str> {
        let own = match url.scheme() {
            "http" => self.http.as_deref(),
            "https" => self.https.as_deref(),
            _ => return None,
        };
        let proxy = own.or(self.all.as_deref())?.trim();
        if proxy.is_empty() || self.bypasses(url) {
            return None;
        }
        Some(proxy)
    }

    /// Whether `NO_PROXY` sends requests for `url` directly. Its entries:
    ///
    /// - `*` matches every host;
    /// - a domain matches itself and its subdomains, with or without a
    ///   leading dot (`example.com` and `.example.com` both match
    ///   `example.com` and `pkg.example.com`; `*.example.com` too);
    /// - an IP address matches that address, and an address with a prefix
    ///   length (`127.0.0.0/8`, `fd00::/8`) the addresses in that range.
    ///   IPv6 addresses may be given in brackets. Names are not resolved: an
    ///   IP entry matches only URLs that name an IP address.
    ///
    /// Ports in entries are not supported (curl ignores them too).
    pub fn bypasses(&self, url: &Url) -> bool {
        let Some(list) = self.no_proxy.as_deref() else {
            return false;
        };
        let Some(host) = url.host() else {
            return false;
        };
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .any(|entry| entry == "*" || entry_matches(entry, &host))
    }
}

fn entry_matches(entry: &str, host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            let entry = entry.strip_prefix('*').unwrap_or(entry);
            let entry = entry.trim_start_matches('.').trim_end_matches('.');
            if entry.is_empty() {
                return false;
            }
            let name = name.to_ascii_lowercase();
            let entry = entry.to_ascii_lowercase();
            name == entry
                || name
                    .strip_suffix(entry.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        }
        Host::Ipv4(ip) => ip_matches(entry, IpAddr::V4(*ip)),
        Host::Ipv6(ip) => ip_matches(entry, IpAddr::V6(*ip)),
    }
}

/// `entry` is an address or a CIDR range that holds `ip`.
fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (address, Some(bits)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let address = address.trim_start_matches('[').trim_end_matches(']');
    let Ok(network) = address.parse::<IpAddr>() else {
        return false;
    };
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = prefix.unwrap_or(width);
    if bits > width {
        return false;
    }
    let shift = width - bits;
    // A shift by the whole width (a /0 range) would overflow: it matches all.
    shift >= 128 || (ip >> shift) == (network >> shift)
}

/// The proxy named by `spec` (`http://user:pass@host:port`, `https://…`,
/// or `host:port`, which is `http://`), for ureq. As in curl, an `http://`
/// proxy without a port is on 1080, an `https://` one on 443. Only HTTP(S)
/// proxies are supported: requests go through them with `CONNECT`.
pub(crate) fn ureq_proxy(spec: &str) -> Result<ureq::Proxy> {
    let invalid = |why: &str| Error::Config(format!("proxy {}: {why}", shown_proxy(spec)));
    let with_scheme = if spec.contains("://") {
        spec.to_string()
    } else {
        format!("http://{spec}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    let scheme = url.scheme();
    let default_port = match scheme {
        "http" => 1080,
        "https" => 443,
        other => {
            return Err(invalid(&format!(
                "unsupported scheme {other:?} (use an http:// or https:// proxy)"
            )))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    let port = url.port().unwrap_or(default_port);
    let credentials = match (url.username(), url.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(password)) => format!("{user}:{password}@"),
    };
    // The user name and password stay percent-encoded: ureq decodes them.
    ureq::Proxy::new(&format!("{scheme}://{credentials}{host}:{port}"))
        .map_err(|_| invalid("not a valid proxy URL"))
}

/// A proxy setting as shown in messages: its scheme, host and port, never
/// its credentials.
pub(crate) fn shown_proxy(spec: &str) -> String {
    let with_scheme = if spec.contains("://") {
        spec.to_string()
    } else {
        format!("http://{spec}")
    };
    match Url::parse(&with_scheme) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
        Err(_) => "(unparsable proxy URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> ProxyConfig {
        ProxyConfig::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn variables_are_read_as_curl_reads_them() {
        let http = url("http://pkg.example/app.zip");
        let https = url("https://pkg.example/app.zip");
        // HTTPS_PROXY is not for http:// URLs, HTTP_PROXY (upper case) never.
        let c = env(&[("HTTPS_PROXY", "http://s:1"), ("HTTP_PROXY", "http://h:1")]);
        assert_eq!(c.proxy_for(&http), None);
        assert_eq!(c.proxy_for(&https), Some("http://s:1"));
        let c = env(&[("http_proxy", "http://h:2"), ("https_proxy", "http://s:2")]);
        assert_eq!(c.proxy_for(&http), Some("http://h:2"));
        assert_eq!(c.proxy_for(&https), Some("http://s:2"));
        // Lower case first.
        let c = env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
        ]);
        assert_eq!(c.proxy_for(&https), Some("http://lower:1"));
        // ALL_PROXY when the scheme's own is unset; an empty one hides it.
        let c = env(&[("ALL_PROXY", "http://all:1"), ("https_proxy", "")]);
        assert_eq!(c.proxy_for(&http), Some("http://all:1"));
        assert_eq!(c.proxy_for(&https), None);
        assert_eq!(env(&[]).proxy_for(&https), None);
        assert_eq!(
            env(&[("NO_PROXY", "a"), ("no_proxy", "b")])
                .no_proxy
                .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn no_proxy_matches_domains_by_suffix() {
        let c = |list: &str| ProxyConfig {
            all: Some("http://p:1".into()),
            no_proxy: Some(list.into()),
            ..ProxyConfig::none()
        };
        for list in [
            "example.com",
            ".example.com",
            "*.example.com",
            "EXAMPLE.com.",
        ] {
            assert!(c(list).bypasses(&url("http://example.com/")), "{list}");
            assert!(
                c(list).bypasses(&url("https://pkg.example.com:8443/")),
                "{list}"
            );
            assert!(c(list).bypasses(&url("http://a.b.example.com./")), "{list}");
            assert!(!c(list).bypasses(&url("http://badexample.com/")), "{list}");
            assert!(
                !c(list).bypasses(&url("http://example.com.evil/")),
                "{list}"
            );
        }
        assert!(c("other.org, example.com").bypasses(&url("http://example.com/")));
        assert!(c("other.org example.com").bypasses(&url("http://example.com/")));
        assert!(c("*").bypasses(&url("http://anything.example/")));
        assert!(c("localhost,*").bypasses(&url("http://10.1.2.3/")));
        assert!(!c("").bypasses(&url("http://example.com/")));
        assert!(!c(".").bypasses(&url("http://example.com/")));
        assert_eq!(
            c("example.com").proxy_for(&url("http://example.com/")),
            None
        );
        assert_eq!(
            c("example.com").proxy_for(&url("http://x.org/")),
            Some("http://p:1")
        );
    }

    #[test]
    fn no_proxy_matches_addresses_and_ranges() {
        let c = |list: &str| ProxyConfig {
            no_proxy: Some(list.into()),
            ..ProxyConfig::none()
        };
        assert!(c("127.0.0.0/8").bypasses(&url("http://127.1.2.3:8080/")));
        assert!(!c("127.0.0.0/8").bypasses(&url("http://128.0.0.1/")));
        assert!(c("10.0.0.1").bypasses(&url("http://10.0.0.1/")));
        assert!(!c("10.0.0.1").bypasses(&url("http://10.0.0.2/")));
        assert!(c("192.168.0.0/16").bypasses(&url("http://192.168.44.1/")));
        assert!(!c("192.168.0.0/16").bypasses(&url("http://192.169.0.1/")));
        assert!(c("0.0.0.0/0").bypasses(&url("http://8.8.8.8/")));
        assert!(c("::1").bypasses(&url("http://[::1]:99/")));
        assert!(c("[::1]").bypasses(&url("http://[::1]/")));
        assert!(c("fd00::/8").bypasses(&url("http://[fd12::1]/")));
        assert!(!c("fd00::/8").bypasses(&url("http://[fe80::1]/")));
        // Families do not mix, names are not resolved, bad ranges match nothing.
        assert!(!c("::/0").bypasses(&url("http://127.0.0.1/")));
        assert!(!c("127.0.0.0/8").bypasses(&url("http://localhost/")));
        assert!(!c("127.0.0.1/33").bypasses(&url("http://127.0.0.1/")));
        assert!(!c("127.0.0.1/x").bypasses(&url("http://127.0.0.1/")));
    }

    #[test]
    fn proxy_urls_parse_as_curl_reads_them() {
        let p = ureq_proxy("proxy.corp:3128").unwrap();
        assert_eq!((p.host(), p.port()), ("proxy.corp", 3128));
        assert_eq!(p.protocol(), ureq::ProxyProtocol::Http);
        assert_eq!(ureq_proxy("http://proxy.corp").unwrap().port(), 1080);
        assert_eq!(ureq_proxy("https://proxy.corp").unwrap().port(), 443);
        let p = ureq_proxy("http://us%40r:p%3Ass@10.0.0.1:8080").unwrap();
        assert_eq!(p.username(), Some("us@r"));
        assert_eq!(p.password(), Some("p:ss"));
        let err = ureq_proxy("socks5://u:hunter22@proxy:1080").unwrap_err();
        assert_eq!(err.code(), 22);
        let shown = err.to_string();
        assert!(shown.contains("socks5://proxy:1080"), "{shown}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(ureq_proxy("http://").is_err());
    }

    #[test]
    fn debug_output_hides_proxy_credentials() {
        let c = ProxyConfig {
            https: Some("http://ci:hunter22@proxy:3128".into()),
            ..ProxyConfig::none()
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("http://proxy:3128"), "{shown}");
        assert!(
            !shown.contains("hunter22") && !shown.contains("ci:"),
            "{shown}"
        );
    }
}
