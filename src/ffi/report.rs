//! The report of a successful run, `zipdeploy_report`: what was installed
//! and what it took, read with getters.

use std::ffi::{c_char, c_int, CString};
use std::time::Duration;

use super::{c_string, free, read, str_at, Object, EMPTY};
use crate::Report;

/// The result of a successful deploy; immutable, safe to read from any
/// thread. Release with `zipdeploy_report_free`.
pub struct zipdeploy_report {
    report: Report,
    digest: CString,
    source: CString,
    dest: CString,
    signed_by: CString,
    warnings: Vec<CString>,
}

impl Object for zipdeploy_report {}

impl zipdeploy_report {
    /// The report with its strings ready to hand out.
    pub(super) fn new(report: Report) -> Self {
        zipdeploy_report {
            digest: c_string(&report.digest.to_hex()),
            source: c_string(&report.source),
            dest: c_string(&report.dest.display().to_string()),
            signed_by: c_string(report.signed_by.as_deref().unwrap_or("")),
            warnings: report.warnings.iter().map(|w| c_string(w)).collect(),
            report,
        }
    }
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The SHA-256 of the installed package, 64 lowercase hex digits.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_digest(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(report, EMPTY, |r| r.digest.as_ptr()) }
}

/// The package location with credentials redacted.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_source(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(report, EMPTY, |r| r.source.as_ptr()) }
}

/// Where the tree is, absolute: the destination, or `DEST/current` when the
/// destination is a mount point.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_dest(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(report, EMPTY, |r| r.dest.as_ptr()) }
}

/// 1 if that digest was already installed and nothing was done, else 0 (also
/// for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_noop(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| c_int::from(r.report.noop)) }
}

/// 1 if entries were extracted while the package downloaded, else 0 (also
/// for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_streamed(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| c_int::from(r.report.streamed)) }
}

/// 1 if the server answered `304 Not Modified` to a conditional request
/// (no digest pinned; the installed package's validators were sent), so
/// nothing was downloaded or extracted; else 0 (also for NULL). The report
/// is then a no-op too.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_not_modified(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| c_int::from(r.report.not_modified)) }
}

/// 1 if the package came from the download cache (re-verified), else 0
/// (also for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_cache_hit(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| c_int::from(r.report.cache_hit)) }
}

/// The id of the minisign key whose signature was verified (16 hex
/// digits), `""` if none was or `report` is NULL. Borrowed from the report:
/// valid until `zipdeploy_report_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_signed_by(
    report: *const zipdeploy_report,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(report, EMPTY, |r| r.signed_by.as_ptr()) }
}

/// Bytes downloaded by this run (0 for a no-op or a local package; for a
/// download resumed from an earlier run's, only the rest; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_bytes_downloaded(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.bytes_downloaded) }
}

/// Size of the package in bytes (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_package_size(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.package_size) }
}

/// Entries in the archive (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_entries(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.entries) }
}

/// Regular files written (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_files(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.files) }
}

/// Directories created (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_dirs(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.dirs) }
}

/// Symlinks created (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_symlinks(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.symlinks) }
}

/// Bytes written into files (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_bytes_written(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.report.bytes_written) }
}

/// Milliseconds spent downloading (or reading) and hashing (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_fetch_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| millis(r.report.timings.fetch)) }
}

/// Milliseconds spent extracting into the staging directory (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_extract_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| millis(r.report.timings.extract)) }
}

/// Milliseconds spent activating the staged tree (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_install_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| millis(r.report.timings.install)) }
}

/// Milliseconds for the whole deploy, waiting for the lock included (0 for
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_total_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| millis(r.report.timings.total)) }
}

/// How many warnings the deploy left (0 for NULL): leftovers of an earlier
/// run that could not be removed and were set aside in the state directory
/// (tried again by every later run). They did not stop the deploy.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_warning_count(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(report, 0, |r| r.warnings.len() as u64) }
}

/// Warning `index` (from 0), one line, e.g. `"could not remove leftover:
/// ...; set aside as /srv/.app.zipdeploy/trash-..."`;
/// `""` if `index` is out of range or `report` is NULL. Borrowed from the
/// report: valid until `zipdeploy_report_free`; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_warning(
    report: *const zipdeploy_report,
    index: u64,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(report, EMPTY, |r| str_at(&r.warnings, index)) }
}

/// Releases a report. NULL is a no-op. Strings borrowed from it become
/// invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_free(report: *mut zipdeploy_report) {
    // SAFETY: forwarded contract: NULL or a report the caller gives up.
    unsafe { free(report) }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{package, text};
    use super::*;
    use crate::Deploy;

    #[test]
    fn report_warnings_are_counted_and_borrowed_by_index() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg, sha) = package(tmp.path(), "1");
        let mut report = Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .sha256(&sha)
            .unwrap()
            .dest(tmp.path().join("app"))
            .run()
            .unwrap();
        assert!(report.warnings.is_empty());
        let clean = Box::into_raw(Box::new(zipdeploy_report::new(report.clone())));
        report.warnings = vec!["could not remove leftover: x".into(), "nul\0in".into()];
        let warned = Box::into_raw(Box::new(zipdeploy_report::new(report)));
        // SAFETY: both reports are live until freed below; NULL is allowed.
        unsafe {
            assert_eq!(zipdeploy_report_warning_count(clean), 0);
            assert_eq!(text(zipdeploy_report_warning(clean, 0)), "");
            assert_eq!(zipdeploy_report_warning_count(std::ptr::null()), 0);
            assert_eq!(text(zipdeploy_report_warning(std::ptr::null(), 0)), "");
            assert_eq!(zipdeploy_report_warning_count(warned), 2);
            assert_eq!(
                text(zipdeploy_report_warning(warned, 0)),
                "could not remove leftover: x"
            );
            assert_eq!(text(zipdeploy_report_warning(warned, 1)), "nul\\0in");
            assert_eq!(text(zipdeploy_report_warning(warned, 2)), "");
            assert_eq!(text(zipdeploy_report_warning(warned, u64::MAX)), "");
            zipdeploy_report_free(clean);
            zipdeploy_report_free(warned);
        }
    }
}
