//! AWS Signature Version 4 for the requests of the S3 fetcher: a GET with no
//! body, signed in the `Authorization` header.
//!
//! Written out here (HMAC-SHA256 over the `sha2` already used for digests)
//! rather than pulled from an SDK: the whole algorithm is a canonical
//! request, a string to sign and four HMACs. It is checked against AWS's
//! published test vectors (`get-vanilla`, `get-vanilla-query-order-key-case`).

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use url::Url;

use super::Credentials;

/// Hex SHA-256 of the empty body of a GET.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes everything but AWS's unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`), and `/` too when `keep_slash`, in upper-case hex.
pub(crate) fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `20150830T123600Z` and `20150830` for a time.
pub(crate) fn amz_date(time: SystemTime) -> (String, String) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::civil::civil_from_days(days as i64);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    (stamp, date)
}

/// The `Host` header value of a URL, as the HTTP client sends it.
pub(crate) fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The canonical query string: names and values encoded, sorted.
fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What a request is signed for.
pub(crate) struct Scope<'a> {
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// The `Authorization` header value for `GET url` with `headers` (names
/// lower-case; `host` and `x-amz-date` among them) and a body hashing to
/// `payload_sha256`. The URL's path is used as it is (already encoded), as
/// S3 wants: no normalisation, no second encoding.
pub(crate) fn authorization(
    credentials: &Credentials,
    scope: &Scope<'_>,
    url: &Url,
    headers: &[(String, String)],
    payload_sha256: &str,
    time: SystemTime,
) -> String {
    let (stamp, date) = amz_date(time);
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = sorted
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    let canonical_request = format!(
        "GET\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}",
        canonical_query(url)
    );
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let secret = format!("AWS4{}", credentials.secret_access_key);
    let key = hmac_sha256(secret.as_bytes(), date.as_bytes());
    let key = hmac_sha256(&key, scope.region.as_bytes());
    let key = hmac_sha256(&key, scope.service.as_bytes());
    let key = hmac_sha256(&key, b"aws4_request");
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The headers that sign `GET url` to S3 at `time`: `x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` with temporary
/// credentials, and `Authorization`.
pub(crate) fn sign_s3_get(
    credentials: &Credentials,
    region: &str,
    url: &Url,
    time: SystemTime,
) -> Vec<(String, String)> {
    let (stamp, _) = amz_date(time);
    let mut headers = vec![
        ("host".to_string(), host_header(url)),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), stamp),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let scope = Scope {
        region,
        service: "s3",
    };
    let auth = authorization(credentials, &scope, url, &headers, EMPTY_SHA256, time);
    headers.remove(0); // the HTTP client sends Host itself
    headers.push(("authorization".to_string(), auth));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example_credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        )
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_headers() -> Vec<(String, String)> {
        vec![
            ("Host".into(), "example.amazonaws.com".into()),
            ("X-Amz-Date".into(), "20150830T123600Z".into()),
        ]
    }

    const SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        service: "service",
    };

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(
            amz_date(suite_time()),
            ("20150830T123600Z".to_string(), "20150830".to_string())
        );
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(amz_date(leap).1, "20000229");
        assert_eq!(amz_date(UNIX_EPOCH).0, "19700101T000000Z");
    }

    #[test]
    fn get_vanilla_test_vector() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let auth = authorization(
            &example_credentials(),
            &SCOPE,
            &url,
            &suite_headers(),
            EMPTY_SHA256,
            suite_time(),
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case_test_vector() {
        let url = Url::parse("https://example.amazonaws.com/?Param2=value2&Param1=value1").unwrap();
        let auth = authorization(
            &example_credentials(),
            &SCOPE,
            &url,
            &suite_headers(),
            EMPTY_SHA256,
            suite_time(),
        );
        assert!(
            auth.ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{auth}"
        );
    }

    #[test]
    fn s3_headers_carry_the_token_and_sign_it() {
        let url = Url::parse("https://b.s3.us-east-1.amazonaws.com/app.zip").unwrap();
        let plain = sign_s3_get(&example_credentials(), "us-east-1", &url, suite_time());
        let names: Vec<&str> = plain.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-amz-content-sha256", "x-amz-date", "authorization"]
        );
        let temporary = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()));
        let signed = sign_s3_get(&temporary, "us-east-1", &url, suite_time());
        let auth = &signed.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            auth.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            ),
            "{auth}"
        );
        assert!(signed.contains(&("x-amz-security-token".into(), "tok".into())));
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a b/c+d~e", true), "a%20b/c%2Bd~e");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }
}
