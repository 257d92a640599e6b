//! Digests and package locations from arbitrary text: parsing never panics,
//! digests round-trip, and a redacted location never shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zipdeploy::{Sha256Digest, Source};

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
                    assert!(!shown.contains(password), "{shown}");
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            if let Ok(url) = url_of(text) {
                if let Some(password) = url.password().filter(|p| p.len() >= 4) {
                    assert!(!message.contains(password), "{message}");
                }
            }
        }
    }
});

fn url_of(text: &str) -> Result<url::Url, url::ParseError> {
    url::Url::parse(text.trim())
}
