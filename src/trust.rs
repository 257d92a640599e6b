//! The certificates TLS connections trust: what the host trusts, as curl and
//! OpenSSL find it, plus the CAs the caller adds.
//!
//! - `SSL_CERT_FILE` (a PEM bundle) and/or `SSL_CERT_DIR` (directories, `:`
//!   separated, every file in them read as PEM — hashed names are not
//!   needed) replace the system store when set. Set and unusable, they are
//!   an error, not a silent fallback.
//! - Otherwise the system store: the bundle and directory OpenSSL would use
//!   (`/etc/ssl/certs/ca-certificates.crt`, `/etc/pki/tls/...`, ...), found
//!   by `rustls-native-certs`.
//! - Where the system has none (a scratch or distroless image), Mozilla's
//!   roots built into the library — unless the caller added a CA: then only
//!   that CA (the bundled roots cannot be combined with others).
//!
//! Loading the system store reads a few hundred kilobytes, so it is done
//! only for `https://` requests, and once per process for given values of
//! the two variables.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts};

use crate::error::{Error, Result};

/// The roots for a TLS connection: the host's trust store plus the
/// certificates in `extra_pem`.
pub(crate) fn root_certs(extra_pem: &[Vec<u8>]) -> Result<RootCerts> {
    let mut extra = Vec::new();
    for pem in extra_pem {
        extra.extend(certificates_in(pem)?);
    }
    let system = system_roots()?;
    if system.is_empty() && extra.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    if extra.is_empty() {
        return Ok(RootCerts::Specific(system));
    }
    Ok(RootCerts::from(system.iter().cloned().chain(extra)))
}

/// The certificates of a PEM text; an error when it holds none or is
/// malformed.
fn certificates_in(pem: &[u8]) -> Result<Vec<Certificate<'static>>> {
    let mut certs = Vec::new();
    for item in parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(Error::Config(format!("bad root certificate PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(Error::Config(
            "no certificate in the root certificate PEM".into(),
        ));
    }
    Ok(certs)
}

/// Reads a PEM file of CA certificates to trust (curl's `--cacert`),
/// checking that it holds at least one certificate.
///
/// ```
/// let err = zipdeploy::fetch::read_cacert_file("/nonexistent/ca.pem".as_ref()).unwrap_err();
/// assert_eq!(err.code(), 70);
/// ```
pub fn read_cacert_file(path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(Error::io("read CA certificate file", path))?;
    certificates_in(&pem).map_err(|e| match e {
        Error::Config(why) => Error::Config(format!("{}: {why}", path.display())),
        other => other,
    })?;
    Ok(pem)
}

/// The values of `SSL_CERT_FILE` and `SSL_CERT_DIR` a store was loaded for.
type StoreKey = (Option<std::ffi::OsString>, Option<std::ffi::OsString>);

/// The last store loaded, by the variables it was loaded for.
static SYSTEM_STORE: Mutex<Option<(StoreKey, Arc<Vec<Certificate<'static>>>)>> = Mutex::new(None);

/// The host's trusted roots (see the module documentation); empty when the
/// system has none.
fn system_roots() -> Result<Arc<Vec<Certificate<'static>>>> {
    let key: StoreKey = (
        std::env::var_os("SSL_CERT_FILE"),
        std::env::var_os("SSL_CERT_DIR"),
    );
    let mut cached = SYSTEM_STORE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded_for, roots)) = cached.as_ref() {
        if *loaded_for == key {
            return Ok(roots.clone());
        }
    }
    let found = rustls_native_certs::load_native_certs();
    let from_env = key.0.is_some() || key.1.is_some();
    if from_env && found.certs.is_empty() {
        let mut named = Vec::new();
        if let Some(file) = &key.0 {
            named.push(format!("SSL_CERT_FILE={}", file.to_string_lossy()));
        }
        if let Some(dir) = &key.1 {
            named.push(format!("SSL_CERT_DIR={}", dir.to_string_lossy()));
        }
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(Error::Config(format!(
            "no CA certificate could be read from {}{why}",
            named.join(" and ")
        )));
    }
    let roots: Arc<Vec<Certificate<'static>>> = Arc::new(
        found
            .certs
            .into_iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect(),
    );
    *cached = Some((key, roots.clone()));
    Ok(roots)
}
