//! Digests and package locations from arbitrary text: parsing never panics,
//! digests round-trip, and a redacted location or error never shows the
//! URL's credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zipdeploy::{Sha256Digest, Source};

/// `user:password@` when the text starts with `scheme://user:password@` and
/// has that only once: the same text may legitimately be part of a path,
/// query or fragment, which are shown.
fn credentials(text: &str) -> Option<String> {
    // Shown text never has control characters (URL parsing drops tabs and
    // line breaks, errors drop the rest): compare without them.
    let text: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    let url = url::Url::parse(&text).ok()?;
    let password = url.password().filter(|p| p.len() >= 4)?;
    let userinfo = format!("{}:{password}@", url.username());
    let prefix = format!("{}://{userinfo}", url.scheme());
    (text.starts_with(&prefix) && text.matches(&userinfo).count() == 1).then_some(userinfo)
}

fuzz_target!(|text: &str| {
    if let Ok(d) = text.parse::<Sha256Digest>() {
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(d.to_hex().len(), 64);
    }
    match Source::parse(text) {
        Ok(source) => {
            let shown = source.redacted();
            // What is shown parses back without a password.
            if let (Source::Http(_), Ok(again)) = (&source, url::Url::parse(&shown)) {
                assert_eq!(again.password(), None, "{shown}");
            }
            if let Some(secret) = credentials(text) {
                assert!(!shown.contains(&secret), "{shown}");
            }
        }
        Err(e) => {
            if let Some(secret) = credentials(text) {
                assert!(!e.to_string().contains(&secret), "{e}");
            }
        }
    }
});
