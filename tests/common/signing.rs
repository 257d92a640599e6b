//! Real minisign keys and signatures for the tests, made with the `minisign`
//! crate (a dev-dependency): prehashed signatures, as current minisign makes.

use std::io::Cursor;

/// A fresh key pair.
pub struct Signer {
    pair: minisign::KeyPair,
}

impl Signer {
    pub fn new() -> Signer {
        Signer {
            pair: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }

    /// The public key as `--minisign-key` takes it (base64).
    pub fn public_base64(&self) -> String {
        self.pair.pk.to_base64()
    }

    /// The text of a `minisign.pub` file.
    pub fn public_file(&self) -> String {
        self.pair.pk.to_box().unwrap().into_string()
    }

    /// The key id as minisign shows it (16 upper-case hex digits).
    pub fn key_id(&self) -> String {
        let b64 = self.public_base64();
        zipdeploy::signature::PublicKey::parse(&b64)
            .unwrap()
            .key_id()
            .to_string()
    }

    /// A `.minisig` file for `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            Cursor::new(bytes),
            Some("timestamp:1700000000\tfile:app.zip\tprehashed"),
            None,
        )
        .unwrap()
        .into_string()
    }
}
