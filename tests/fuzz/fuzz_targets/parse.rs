//! Digests and package locations from arbitrary text: parsing never panics,
//! digests round-trip, and a redacted location or error never shows the
//! URL's credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zipdeploy::{Sha256Digest, Source};

/// The credentials as they follow the scheme, e.g. `://deploy:secret@`,
/// when they stand only there: the same text may legitimately be part of a
/// path or query, which are shown.
fn credentials(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let password = url.password().filter(|p| p.len() >= 4)?;
    let secret = format!("://{}:{password}@", url.username());
    (text.matches(&secret).count() == 1).then_some(secret)
}

fuzz_target!(|text: &str| {
    if let Ok(d) = text.parse::<Sha256Digest>() {
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(d.to_hex().len(), 64);
    }
    let shown = match Source::parse(text) {
        Ok(source) => source.redacted(),
        Err(e) => e.to_string(),
    };
    if let Some(secret) = credentials(text) {
        assert!(!shown.contains(&secret), "{shown}");
    }
});
