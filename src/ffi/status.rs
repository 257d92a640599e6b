//! The installed-status object, `zipdeploy_status`: what a destination holds
//! (the installed package and the releases kept for rollback), read with
//! `zipdeploy_status_read` or handed out by `zipdeploy_deploy_rollback`.

use std::ffi::{c_char, c_int, CString};

use super::error::Failure;
use super::{
    boundary, c_string, free, put, read, str_arg, zipdeploy_error, Object, EMPTY, ZIPDEPLOY_CONFIG,
    ZIPDEPLOY_OK, ZIPDEPLOY_PANIC,
};
use crate::install::Installed;
use crate::Status;

/// What a destination holds: the installed package (if zipdeploy installed
/// what is there) and the releases kept for rollback. Immutable, safe to
/// read from any thread. Made by `zipdeploy_status_read` and
/// `zipdeploy_deploy_rollback`; release with `zipdeploy_status_free`.
pub struct zipdeploy_status {
    status: Status,
    dest: CString,
    current: Option<CRecord>,
    kept: Vec<Option<CRecord>>,
}

impl Object for zipdeploy_status {}

/// A record's strings, ready to hand out.
struct CRecord {
    installed: Installed,
    digest: CString,
    source: CString,
    signed_by: CString,
}

impl CRecord {
    fn new(installed: &Installed) -> CRecord {
        CRecord {
            installed: installed.clone(),
            digest: c_string(&installed.digest.to_hex()),
            source: c_string(&installed.source),
            signed_by: c_string(installed.signed_by.as_deref().unwrap_or("")),
        }
    }
}

/// Which record a getter reads.
#[derive(Clone, Copy)]
enum Which {
    /// The installed package.
    Installed,
    /// Kept release `index` (0 the oldest).
    Kept(u64),
}

impl zipdeploy_status {
    /// The status with its strings ready to hand out.
    pub(super) fn new(status: Status) -> Self {
        zipdeploy_status {
            dest: c_string(&status.dest.display().to_string()),
            current: status.current.as_ref().map(CRecord::new),
            kept: status
                .kept
                .iter()
                .map(|r| r.installed.as_ref().map(CRecord::new))
                .collect(),
            status,
        }
    }

    /// The record asked for, if there is one and it is known.
    fn record(&self, which: Which) -> Option<&CRecord> {
        match which {
            Which::Installed => self.current.as_ref(),
            Which::Kept(i) => self.kept.get(usize::try_from(i).ok()?)?.as_ref(),
        }
    }
}

/// A string of a record; `""` when the status is NULL or has no such record.
///
/// # Safety
/// `status` is NULL or a live status.
unsafe fn record_str(
    status: *const zipdeploy_status,
    which: Which,
    f: impl FnOnce(&CRecord) -> &CString,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe {
        read(status, EMPTY, |s| {
            s.record(which).map_or(EMPTY, |r| f(r).as_ptr())
        })
    }
}

/// A number of a record; 0 when the status is NULL or has no such record.
///
/// # Safety
/// `status` is NULL or a live status.
unsafe fn record_u64(
    status: *const zipdeploy_status,
    which: Which,
    f: impl FnOnce(&Installed) -> u64,
) -> u64 {
    // SAFETY: forwarded contract.
    unsafe {
        read(status, 0, |s| {
            s.record(which).map_or(0, |r| f(&r.installed))
        })
    }
}

/// Reads what is installed at `dest` (no handle needed). Writes nothing and
/// takes no lock, so it does not wait for a deploy in progress.
///
/// On success returns `ZIPDEPLOY_OK` and, if `status_out` is not NULL,
/// stores a new status the caller releases with `zipdeploy_status_free` —
/// also when nothing is installed (`zipdeploy_status_installed` is then 0).
/// On failure (`ZIPDEPLOY_INVALID_ARGUMENT` for a NULL `dest`,
/// `ZIPDEPLOY_INVALID_UTF8`, `ZIPDEPLOY_CONFIG` for a path without a final
/// name) returns the result code and stores a new error in `error_out` if
/// it is not NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_read(
    dest: *const c_char,
    status_out: *mut *mut zipdeploy_status,
    error_out: *mut *mut zipdeploy_error,
) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        let read = || -> Result<Status, Failure> {
            // SAFETY: forwarded contract: NULL or a NUL-terminated string.
            let dest = unsafe { str_arg(dest, "dest") }?;
            if dest.is_empty() {
                return Err(Failure::new(
                    ZIPDEPLOY_CONFIG,
                    "invalid configuration: empty destination directory",
                ));
            }
            Ok(crate::status(dest)?)
        };
        match read() {
            Ok(status) => {
                // SAFETY: forwarded contract: NULL or a writable slot.
                unsafe { put(status_out, zipdeploy_status::new(status)) };
                ZIPDEPLOY_OK
            }
            // SAFETY: forwarded contract: NULL or a writable slot.
            Err(failure) => unsafe { failure.put(error_out) },
        }
    })
}

/// 1 if zipdeploy installed what the destination holds, 0 if not (nothing
/// there, or a tree it has no record of) or if `status` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_installed(status: *const zipdeploy_status) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(status, 0, |s| c_int::from(s.status.current.is_some())) }
}

/// Where the tree is, absolute: the destination, or `DEST/current` when the
/// destination is a mount point. Borrowed from the status: valid
/// until `zipdeploy_status_free`. `""` if `status` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_dest(status: *const zipdeploy_status) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(status, EMPTY, |s| s.dest.as_ptr()) }
}

/// The SHA-256 of the installed package (64 hex digits), `""` when nothing
/// is installed or `status` is NULL. Borrowed: valid until
/// `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_digest(status: *const zipdeploy_status) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Which::Installed, |r| &r.digest) }
}

/// Where the installed package came from, credentials redacted; `""` when
/// nothing is installed. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_source(status: *const zipdeploy_status) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Which::Installed, |r| &r.source) }
}

/// The id of the minisign key whose signature of the installed package was
/// verified; `""` if none was. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_signed_by(
    status: *const zipdeploy_status,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Which::Installed, |r| &r.signed_by) }
}

/// When the installed package was activated, in seconds since the Unix
/// epoch; 0 when nothing is installed.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_installed_at(status: *const zipdeploy_status) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Which::Installed, |r| r.installed_at) }
}

/// Size of the installed package in bytes; 0 when nothing is installed.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_package_size(status: *const zipdeploy_status) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Which::Installed, |r| r.package_size) }
}

/// How many previous releases are kept for rollback (0 for NULL). Index
/// them with the `zipdeploy_status_kept_*` getters, 0 the oldest; the last
/// is the one a rollback brings back.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_count(status: *const zipdeploy_status) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(status, 0, |s| s.kept.len() as u64) }
}

/// The SHA-256 of kept release `index`; `""` if it is out of range, its
/// package is unknown (a tree that predates zipdeploy), or `status` is NULL.
/// Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_digest(
    status: *const zipdeploy_status,
    index: u64,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Which::Kept(index), |r| &r.digest) }
}

/// Where kept release `index` came from, credentials redacted; `""` when
/// unknown. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_source(
    status: *const zipdeploy_status,
    index: u64,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Which::Kept(index), |r| &r.source) }
}

/// When kept release `index` was activated (Unix seconds); 0 when unknown.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_installed_at(
    status: *const zipdeploy_status,
    index: u64,
) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Which::Kept(index), |r| r.installed_at) }
}

/// Size of kept release `index`'s package in bytes; 0 when unknown.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_package_size(
    status: *const zipdeploy_status,
    index: u64,
) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Which::Kept(index), |r| r.package_size) }
}

/// Releases a status. NULL is a no-op. Strings borrowed from it become
/// invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_free(status: *mut zipdeploy_status) {
    // SAFETY: forwarded contract: NULL or a status the caller gives up.
    unsafe { free(status) }
}
