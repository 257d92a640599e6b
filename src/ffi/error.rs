//! The result codes and the owned error object, `zipdeploy_error`.

use std::ffi::{c_char, c_int, CStr, CString};

use super::{boundary, c_string, free, read, Object};
use crate::Error;

/// The result codes: a constant for each row of `code_table.rs`, and
/// `CODES`, every code with its name.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal, $text:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: c_int = $value;)*

        /// Every result code, in the table's order.
        const CODES: &[Code] = &[$(Code {
            #[cfg(test)]
            constant: stringify!($name),
            code: $name,
            name: c_str(concat!($text, "\0")),
        }),*];
    };
}
include!("code_table.rs");

/// A row of the table of result codes.
struct Code {
    /// The name of its constant, `ZIPDEPLOY_...` (for the header test).
    #[cfg(test)]
    constant: &'static str,
    code: c_int,
    /// Its short name (`zipdeploy_code_str`).
    name: &'static CStr,
}

/// A `&CStr` from a literal that ends in its only NUL (checked when compiled).
const fn c_str(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("a code's name contains a NUL byte"),
    }
}

/// The short name of a result code, if it is one.
fn code_name(code: c_int) -> Option<&'static CStr> {
    CODES.iter().find(|c| c.code == code).map(|c| c.name)
}

/// A failed call: its result code and message.
pub(super) struct Failure {
    pub(super) code: c_int,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(code: c_int, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A NULL argument.
    pub(super) fn null(what: &str) -> Self {
        Failure::new(ZIPDEPLOY_INVALID_ARGUMENT, format!("{what} is NULL"))
    }

    /// Hands the failure to C: stores a new `zipdeploy_error` in `error_out`
    /// unless it is NULL, and returns the code.
    ///
    /// # Safety
    /// `error_out` is NULL or a writable `zipdeploy_error *` slot.
    pub(super) unsafe fn put(self, error_out: *mut *mut zipdeploy_error) -> c_int {
        let code = self.code;
        let error = zipdeploy_error {
            code,
            message: c_string(&self.message),
        };
        // SAFETY: forwarded contract: NULL or a writable slot.
        unsafe { super::put(error_out, error) };
        code
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = c_int::try_from(e.code()).unwrap_or(ZIPDEPLOY_PANIC);
        Failure::new(code, e.to_string())
    }
}

/// An owned error: a result code and its one-line message. Immutable, safe to
/// read from any thread. Release with `zipdeploy_error_free`.
pub struct zipdeploy_error {
    code: c_int,
    message: CString,
}

impl Object for zipdeploy_error {}

/// The result code of an error (never `ZIPDEPLOY_OK`), or
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `error` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_code(error: *const zipdeploy_error) -> c_int {
    // SAFETY: forwarded contract: NULL or a live error.
    let code = unsafe { read(error, None, |e| Some(e.code)) };
    code.unwrap_or(ZIPDEPLOY_INVALID_ARGUMENT)
}

/// The class of an error's code (`zipdeploy_code_class`), or 2 (usage) if
/// `error` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_class(error: *const zipdeploy_error) -> c_int {
    // SAFETY: forwarded contract.
    zipdeploy_code_class(unsafe { zipdeploy_error_code(error) })
}

/// The one-line message of an error, naming its cause (entry, limit,
/// digests, HTTP status); credentials are never included.
///
/// Borrowed from the error: valid until `zipdeploy_error_free`. `""` if
/// `error` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_message(error: *const zipdeploy_error) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live error.
    unsafe { read(error, c"".as_ptr(), |e| e.message.as_ptr()) }
}

/// Releases an error. NULL is a no-op. Its message becomes invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_free(error: *mut zipdeploy_error) {
    // SAFETY: forwarded contract: NULL or an error the caller gives up.
    unsafe { free(error) }
}

/// The class of a result code: `code / 10` for a known code (2 usage, 3
/// network, 4 digest, 5 archive, 6 limit, 7 filesystem, 8 hook, 9 cancelled,
/// 1 internal), 0 for `ZIPDEPLOY_OK`, 1 for an unknown code.
///
/// The class is the example CLI's exit status. Thread-safe.
#[no_mangle]
pub extern "C" fn zipdeploy_code_class(code: c_int) -> c_int {
    boundary(1, || match code {
        ZIPDEPLOY_OK => 0,
        c if code_name(c).is_some() => c / 10,
        _ => 1,
    })
}

/// A short name for a result code, e.g. `"digest mismatch"` for 40, or
/// `"unknown code"`.
///
/// Returns a static string; never NULL, never freed. Thread-safe.
#[no_mangle]
pub extern "C" fn zipdeploy_code_str(code: c_int) -> *const c_char {
    boundary(c"unknown code".as_ptr(), || {
        code_name(code).unwrap_or(c"unknown code").as_ptr()
    })
}

/// Deprecated: the old name of `zipdeploy_code_class` (kept so that
/// existing programs still link; "status" now means only the
/// `zipdeploy_status` object). Same result.
#[no_mangle]
pub extern "C" fn zipdeploy_status_class(status: c_int) -> c_int {
    zipdeploy_code_class(status)
}

/// Deprecated: the old name of `zipdeploy_code_str` (kept so that existing
/// programs still link). Same names, but `"unknown status"` for an unknown
/// code.
#[no_mangle]
pub extern "C" fn zipdeploy_status_str(status: c_int) -> *const c_char {
    boundary(c"unknown status".as_ptr(), || {
        code_name(status).unwrap_or(c"unknown status").as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::test_support::text;
    use super::*;
    use crate::ffi::zipdeploy_version;
    use crate::Limit;

    #[test]
    fn version_and_status_helpers() {
        assert_eq!(text(zipdeploy_version()), env!("CARGO_PKG_VERSION"));
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_OK), 0);
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_PANIC), 1);
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_INVALID_ARGUMENT), 2);
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_HTTP_STATUS), 3);
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_DIGEST_MISMATCH), 4);
        assert_eq!(zipdeploy_status_class(ZIPDEPLOY_CANCELLED), 9);
        assert_eq!(zipdeploy_status_class(47), 1, "unknown status");
        assert_eq!(zipdeploy_status_class(-1), 1, "unknown status");
        assert_eq!(text(zipdeploy_status_str(40)), "digest mismatch");
        assert_eq!(text(zipdeploy_status_str(12345)), "unknown status");
        // The ABI's numbers are the library's codes.
        let cancelled = Failure::from(Error::Cancelled);
        assert_eq!(cancelled.code, ZIPDEPLOY_CANCELLED);
        let mismatch = Failure::from(Error::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert_eq!(mismatch.code, ZIPDEPLOY_DIGEST_MISMATCH);
        let fleet = [
            (
                Error::MirrorsFailed {
                    failures: Vec::new(),
                },
                ZIPDEPLOY_MIRRORS_FAILED,
            ),
            (
                Error::SignatureInvalid {
                    key_id: "K".into(),
                    signature: "s".into(),
                    reason: "r".into(),
                },
                ZIPDEPLOY_SIGNATURE_INVALID,
            ),
            (
                Error::SignatureMissing {
                    key_id: "K".into(),
                    signature: "s".into(),
                    reason: "r".into(),
                },
                ZIPDEPLOY_SIGNATURE_MISSING,
            ),
            (
                Error::DigestSidecar {
                    url: "u".into(),
                    reason: "r".into(),
                },
                ZIPDEPLOY_DIGEST_SIDECAR,
            ),
            (
                Error::NoRelease {
                    dest: PathBuf::from("/d"),
                },
                ZIPDEPLOY_NO_RELEASE,
            ),
        ];
        for (error, status) in fleet {
            assert_eq!(Failure::from(error).code, status);
            assert!(code_name(status).is_some(), "{status} has a name");
        }
    }

    /// One error of each variant, in declaration order.
    fn every_error() -> Vec<Error> {
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let (url, reason) = (String::from("http://host/app.zip"), String::from("r"));
        vec![
            Error::InvalidUrl {
                url: url.clone(),
                reason: reason.clone(),
            },
            Error::InvalidDigest("abc".into()),
            Error::Config("no destination".into()),
            Error::HttpStatus {
                url: url.clone(),
                status: 404,
            },
            Error::Network {
                url: url.clone(),
                reason: reason.clone(),
                kind: crate::NetworkKind::Connect,
            },
            Error::Timeout {
                url: url.clone(),
                what: "stall".into(),
                kind: crate::TimeoutKind::Stall,
            },
            Error::Truncated {
                url: url.clone(),
                received: 1,
                expected: 2,
            },
            Error::Redirect {
                url: url.clone(),
                reason: reason.clone(),
            },
            Error::Tls {
                url: url.clone(),
                reason: reason.clone(),
                kind: crate::TlsKind::Handshake,
            },
            Error::MirrorsFailed {
                failures: Vec::new(),
            },
            Error::DigestMismatch {
                expected: "a".into(),
                actual: "b".into(),
            },
            Error::SignatureInvalid {
                key_id: "K".into(),
                signature: "s".into(),
                reason: reason.clone(),
            },
            Error::SignatureMissing {
                key_id: "K".into(),
                signature: "s".into(),
                reason: reason.clone(),
            },
            Error::DigestSidecar {
                url: url.clone(),
                reason: reason.clone(),
            },
            Error::NotZip("x".into()),
            Error::CorruptArchive("x".into()),
            Error::UnsafeEntry {
                entry: "../x".into(),
                reason: reason.clone(),
            },
            Error::UnsupportedEntry {
                entry: "x".into(),
                reason: reason.clone(),
            },
            Error::LimitExceeded {
                limit: Limit::Entries,
                max: 1,
                actual: 2,
                entry: None,
            },
            Error::Io {
                op: "create",
                path: PathBuf::from("/d"),
                source: io(),
            },
            Error::NoSpace {
                path: PathBuf::from("/d"),
                needed: 2,
                available: 1,
            },
            Error::NoInodes {
                path: PathBuf::from("/d"),
                needed: 2,
                available: 1,
            },
            Error::NoRelease {
                dest: PathBuf::from("/d"),
            },
            Error::Hook("exit status 1".into()),
            Error::Cancelled,
        ]
    }

    /// The position of the variant in [`every_error`]. No `_` arm: a new
    /// variant does not compile until it is listed here and there.
    fn position(e: &Error) -> usize {
        match e {
            Error::InvalidUrl { .. } => 0,
            Error::InvalidDigest(_) => 1,
            Error::Config(_) => 2,
            Error::HttpStatus { .. } => 3,
            Error::Network { .. } => 4,
            Error::Timeout { .. } => 5,
            Error::Truncated { .. } => 6,
            Error::Redirect { .. } => 7,
            Error::Tls { .. } => 8,
            Error::MirrorsFailed { .. } => 9,
            Error::DigestMismatch { .. } => 10,
            Error::SignatureInvalid { .. } => 11,
            Error::SignatureMissing { .. } => 12,
            Error::DigestSidecar { .. } => 13,
            Error::NotZip(_) => 14,
            Error::CorruptArchive(_) => 15,
            Error::UnsafeEntry { .. } => 16,
            Error::UnsupportedEntry { .. } => 17,
            Error::LimitExceeded { .. } => 18,
            Error::Io { .. } => 19,
            Error::NoSpace { .. } => 20,
            Error::NoInodes { .. } => 21,
            Error::NoRelease { .. } => 22,
            Error::Hook(_) => 23,
            Error::Cancelled => 24,
        }
    }

    #[test]
    fn every_error_variant_has_its_code_name_and_class() {
        let errors = every_error();
        let positions: Vec<usize> = errors.iter().map(position).collect();
        assert_eq!(
            positions,
            (0..25).collect::<Vec<_>>(),
            "one of each variant"
        );
        for error in errors {
            let code = c_int::try_from(error.code()).unwrap();
            let class = error.class() as c_int;
            let failure = Failure::from(error);
            assert_eq!(failure.code, code, "{}", failure.message);
            let row = CODES.iter().find(|c| c.code == code);
            assert!(
                row.is_some(),
                "code {code} ({}) is in code_table.rs",
                failure.message
            );
            assert_ne!(text(zipdeploy_code_str(code)), "unknown code", "{code}");
            assert_eq!(zipdeploy_code_class(code), class, "{code}");
            assert_eq!(zipdeploy_status_class(code), class, "{code}");
        }
    }

    #[test]
    fn code_helpers_name_and_class_codes() {
        assert_eq!(zipdeploy_code_class(ZIPDEPLOY_OK), 0);
        assert_eq!(zipdeploy_code_class(ZIPDEPLOY_PANIC), 1);
        assert_eq!(zipdeploy_code_class(ZIPDEPLOY_BUSY), 2);
        assert_eq!(zipdeploy_code_class(ZIPDEPLOY_NO_RELEASE), 7);
        assert_eq!(zipdeploy_code_class(47), 1, "unknown code");
        assert_eq!(zipdeploy_code_class(-1), 1, "unknown code");
        assert_eq!(text(zipdeploy_code_str(ZIPDEPLOY_OK)), "ok");
        assert_eq!(text(zipdeploy_code_str(40)), "digest mismatch");
        assert_eq!(text(zipdeploy_code_str(12345)), "unknown code");
        // The deprecated names give the same answers (and their old text).
        for row in CODES {
            assert_eq!(
                zipdeploy_status_class(row.code),
                zipdeploy_code_class(row.code)
            );
            assert_eq!(
                text(zipdeploy_status_str(row.code)),
                text(zipdeploy_code_str(row.code))
            );
        }
        assert_eq!(text(zipdeploy_status_str(12345)), "unknown status");
    }

    #[test]
    fn the_header_defines_every_code_of_the_table_once() {
        const HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/zipdeploy.h"));
        let mut codes: Vec<c_int> = CODES.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len(), "codes are distinct");
        for row in CODES {
            let define = format!("\n#define {} {}\n", row.constant, row.code);
            assert_eq!(
                HEADER.matches(&define).count(),
                1,
                "{define:?} in the header"
            );
            assert!(row.constant.starts_with("ZIPDEPLOY_"));
            assert!(!row.name.is_empty());
        }
        let defines = HEADER.matches("\n#define ZIPDEPLOY_").count();
        let others = [
            "H",
            "VERSION",
            "VERSION_MAJOR",
            "VERSION_MINOR",
            "VERSION_PATCH",
        ]
        .len();
        assert_eq!(defines, CODES.len() + others, "no code outside the table");
    }
}
