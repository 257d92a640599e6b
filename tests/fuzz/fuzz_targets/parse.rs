//! Digests and package locations from arbitrary text: parsing never panics,
//! digests round-trip, and a redacted location never shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zipdeploy::{Sha256Digest, Source};

/// Whether `password` shows in the URL outside its user-info (then a
/// redacted URL may show it too: it is part of the path, not a credential).
fn elsewhere(url: &url::Url, password: &str) -> bool {
    let mut bare = url.clone();
    let _ = bare.set_password(None);
    let _ = bare.set_username("");
    bare.as_str().contains(password)
}

fuzz_target!(|text: &str| {
    if let Ok(d) = text.parse::<Sha256Digest>() {
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(d.to_hex().len(), 64);
    }
    match Source::parse(text) {
        Ok(source) => {
            let shown = source.redacted();
            if let Source::Http(url) = &source {
                if let Some(password) = url.password().filter(|p| p.len() >= 4) {
                    assert!(!shown.contains(password) || elsewhere(url, password), "{shown}");
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            if let Ok(url) = url_of(text) {
                if let Some(password) = url.password().filter(|p| p.len() >= 4) {
                    assert!(!message.contains(password) || elsewhere(&url, password), "{message}");
                }
            }
        }
    }
});

fn url_of(text: &str) -> Result<url::Url, url::ParseError> {
    url::Url::parse(text.trim())
}
