//! Minisign (Ed25519) signatures of packages.
//!
//! A deploy given a [`PublicKey`] refuses any package whose minisign
//! signature does not verify with that key, so an image can carry the key
//! and the package host need not be trusted. The signature is fetched (from
//! `URL.minisig` by default) *before* the package, and verified over the
//! exact bytes downloaded, in the same pass that writes and hashes them:
//! current minisign signs the BLAKE2b-512 hash of the file ("prehashed",
//! the default since minisign 0.8), which `minisign-verify` computes as a
//! stream. Legacy (non-prehashed) signatures sign the whole file and cannot
//! be checked without holding it in memory; they are refused.
//!
//! Verification happens before anything is extracted into DEST's place; a
//! bad signature fails the deploy with [`Error::SignatureInvalid`] (code
//! 41), a missing one with [`Error::SignatureMissing`] (code 42), both in
//! the digest class like a SHA-256 mismatch. Messages name the key by its
//! minisign key id (as `minisign` prints it), never anything secret.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tap::Tap;

/// A minisign public key that packages must be signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: minisign_verify::PublicKey,
    id: String,
}

impl PublicKey {
    /// Parses a key: the base64 string of a minisign public key
    /// (`RWQ…`, the second line of `minisign.pub`), or the whole text of a
    /// `.pub` file (its comment line is ignored).
    ///
    /// ```
    /// let key = zipdeploy::signature::PublicKey::parse(
    ///     "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")?;
    /// assert_eq!(key.key_id(), "E7620F1842B4E81F");
    /// # Ok::<(), zipdeploy::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<PublicKey> {
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .collect::<Vec<_>>();
        let [b64] = line[..] else {
            return Err(invalid_key("expected one base64 key line"));
        };
        let key = minisign_verify::PublicKey::from_base64(b64)
            .map_err(|e| invalid_key(&e.to_string()))?;
        let raw = base64_decode(b64).ok_or_else(|| invalid_key("not base64"))?;
        // Bytes 2..10 are the key id, shown by minisign as a little-endian
        // 64-bit number in upper-case hex.
        let id = raw[2..10]
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect();
        Ok(PublicKey { key, id })
    }

    /// Reads a key from a `minisign.pub` file.
    pub fn from_file(path: &Path) -> Result<PublicKey> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read key", path))?;
        PublicKey::parse(&text)
    }

    /// A key as the CLI takes it: the base64 key itself, or the path of a
    /// `.pub` file.
    pub fn from_arg(arg: &str) -> Result<PublicKey> {
        let arg = arg.trim();
        let looks_like_key = arg.len() == 56
            && arg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if looks_like_key {
            PublicKey::parse(arg)
        } else {
            PublicKey::from_file(Path::new(arg))
        }
    }

    /// The key id, 16 upper-case hex digits, as `minisign` shows it.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Parses a signature file and checks that it is one this key can
    /// verify as a stream. `shown` names the signature's location in errors.
    pub(crate) fn signature(&self, text: &[u8], shown: &str) -> Result<Signature> {
        let invalid = |reason: String| Error::SignatureInvalid {
            key_id: self.id.clone(),
            signature: shown.to_string(),
            reason,
        };
        let text = std::str::from_utf8(text).map_err(|_| invalid("not UTF-8 text".into()))?;
        let sig = minisign_verify::Signature::decode(text.trim_start())
            .map_err(|e| invalid(format!("not a minisign signature ({e})")))?;
        let signature = Signature {
            sig,
            text: text.to_string(),
        };
        // Checks the key id and that the signature is prehashed.
        match self.key.verify_stream(&signature.sig) {
            Ok(_) => Ok(signature),
            Err(minisign_verify::Error::UnexpectedKeyId) => Err(invalid(format!(
                "signed by another key{}",
                signature_key_id(text)
                    .map(|id| format!(" ({id})"))
                    .unwrap_or_default()
            ))),
            Err(minisign_verify::Error::UnsupportedLegacyMode) => Err(invalid(
                "legacy (non-prehashed) signature; sign with a current minisign (prehashed is \
                 the default since 0.8)"
                    .into(),
            )),
            Err(e) => Err(invalid(e.to_string())),
        }
    }

    /// A verifier fed with the package's bytes as they are written.
    pub(crate) fn verifier<'a>(&'a self, signature: &'a Signature) -> Verifier<'a> {
        let pristine = self
            .key
            .verify_stream(&signature.sig)
            .expect("checked by PublicKey::signature");
        Verifier {
            current: pristine.clone(),
            pristine,
            key_id: &self.id,
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

fn invalid_key(why: &str) -> Error {
    Error::Config(format!("invalid minisign public key: {why}"))
}

/// A parsed signature, and its text (kept beside a cache entry).
#[derive(Clone)]
pub(crate) struct Signature {
    sig: minisign_verify::Signature,
    pub(crate) text: String,
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:?})", self.sig.trusted_comment())
    }
}

/// Verifies a signature over bytes fed to it as a stream.
pub(crate) struct Verifier<'a> {
    pristine: minisign_verify::StreamVerifier<'a>,
    current: minisign_verify::StreamVerifier<'a>,
    key_id: &'a str,
}

impl Verifier<'_> {
    /// Whether the signature verifies over everything fed since the last
    /// restart. `shown` names the signature's location in the error.
    pub(crate) fn finish(&mut self, shown: &str) -> Result<()> {
        self.current
            .finalize()
            .map_err(|e| Error::SignatureInvalid {
                key_id: self.key_id.to_string(),
                signature: shown.to_string(),
                reason: match e {
                    minisign_verify::Error::InvalidSignature => {
                        "the signature does not match the package's bytes".into()
                    }
                    other => other.to_string(),
                },
            })
    }
}

impl Tap for Verifier<'_> {
    fn update(&mut self, bytes: &[u8]) {
        self.current.update(bytes);
    }

    fn restart(&mut self) {
        self.current = self.pristine.clone();
    }
}

/// The key id a signature names (from its first base64 line), for messages.
fn signature_key_id(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).nth(1)?;
    let raw = base64_decode(line)?;
    (raw.len() >= 10).then(|| {
        raw[2..10]
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect()
    })
}

/// Standard base64 with optional padding; `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn parses_keys_and_names_them_by_id() {
        let key = PublicKey::parse(KEY).unwrap();
        assert_eq!(key.key_id(), "E7620F1842B4E81F");
        let file = format!("untrusted comment: minisign public key E7620F1842B4E81F\n{KEY}\n");
        assert_eq!(PublicKey::parse(&file).unwrap(), key);
        assert_eq!(PublicKey::from_arg(KEY).unwrap(), key);
        let err = PublicKey::parse("RWQnotakey").unwrap_err();
        assert_eq!(err.code(), 22);
        let err = PublicKey::from_arg("/nonexistent/key.pub").unwrap_err();
        assert_eq!(err.code(), 70);
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode("a!").is_none());
    }

    #[test]
    fn verifies_a_prehashed_signature_as_a_stream_and_restarts() {
        let key = PublicKey::parse(KEY).unwrap();
        let sig = "untrusted comment: signature from minisign secret key\n\
RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\n\
trusted comment: timestamp:1633700835\tfile:test\tprehashed\n\
wLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";
        let sig = key.signature(sig.as_bytes(), "test.minisig").unwrap();
        let mut v = key.verifier(&sig);
        v.update(b"stale");
        v.restart();
        v.update(b"te");
        v.update(b"st");
        v.finish("test.minisig").unwrap();
        let mut v = key.verifier(&sig);
        v.update(b"Test");
        let err = v.finish("test.minisig").unwrap_err();
        assert_eq!(err.code(), 41);
        assert!(err.to_string().contains("E7620F1842B4E81F"), "{err}");

        let err = key.signature(b"garbage", "x.minisig").unwrap_err();
        assert_eq!(err.code(), 41);
    }
}
