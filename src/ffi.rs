//! The C ABI over [`crate::Deploy`]; `include/zipdeploy.h` is generated from
//! this file by cbindgen (see `build.rs`).
//!
//! Conventions (the model is rustls-ffi):
//!
//! - Every symbol is `zipdeploy_<noun>_<verb>`. Handles are opaque and
//!   created by `_new` (or returned by [`zipdeploy_deploy_run`]) and released
//!   by `_free`; `_free(NULL)` does nothing.
//! - Fallible functions return a status: [`ZIPDEPLOY_OK`] (0) or one of the
//!   stable codes below, which are the library's [`crate::Error::code`]
//!   values plus a few of the ABI's own. `status / 10` is the class, the same
//!   number as the example CLI's exit status.
//! - Outputs are written only on success. Error detail lives on the deploy
//!   handle or in an owned [`zipdeploy_error`], never in thread-local state:
//!   Go moves goroutines between OS threads between two cgo calls.
//! - Strings are NUL-terminated UTF-8 both ways.
//! - No panic crosses the boundary: every export runs inside
//!   `catch_unwind`, and a panic becomes [`ZIPDEPLOY_PANIC`].
//! - NULL arguments give [`ZIPDEPLOY_INVALID_ARGUMENT`] (getters return 0 or
//!   an empty string); they never crash.
//!
//! Every `pub unsafe extern "C"` function here has the same safety contract:
//! each pointer argument is NULL or valid for what its documentation says
//! (a handle from the matching constructor that has not been freed, a
//! NUL-terminated string, a writable out-pointer). The `unsafe` blocks below
//! rely on exactly that and nothing more.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use crate::install::Installed;
use crate::signature::PublicKey;
use crate::{
    Deploy, Error, FetchOptions, Limits, Progress, Report, Sha256Digest, Source, Stage, Status,
};

/// Success.
pub const ZIPDEPLOY_OK: c_int = 0;
/// A panic inside the library was caught at the boundary (a bug; class 1).
pub const ZIPDEPLOY_PANIC: c_int = 10;
/// The package location could not be parsed or is not supported.
pub const ZIPDEPLOY_INVALID_URL: c_int = 20;
/// The expected SHA-256 is not 64 hex digits (optionally prefixed `sha256:`).
pub const ZIPDEPLOY_INVALID_DIGEST: c_int = 21;
/// An option is missing or out of range (no URL, no destination, ...).
pub const ZIPDEPLOY_CONFIG: c_int = 22;
/// A required pointer argument was NULL, or a value is out of range.
pub const ZIPDEPLOY_INVALID_ARGUMENT: c_int = 23;
/// A string argument is not valid UTF-8.
pub const ZIPDEPLOY_INVALID_UTF8: c_int = 24;
/// The deploy handle is in use: called from its own progress callback, or
/// from another thread while a call on it is running.
pub const ZIPDEPLOY_BUSY: c_int = 25;
/// The server answered with an HTTP status that is not success.
pub const ZIPDEPLOY_HTTP_STATUS: c_int = 30;
/// The connection failed (DNS, refused, reset, ...).
pub const ZIPDEPLOY_NETWORK: c_int = 31;
/// A connect, stall or overall timeout expired.
pub const ZIPDEPLOY_TIMEOUT: c_int = 32;
/// The body ended before the length the server announced.
pub const ZIPDEPLOY_TRUNCATED: c_int = 33;
/// A redirect was refused (loop, too many, or https to http).
pub const ZIPDEPLOY_REDIRECT: c_int = 34;
/// TLS failed (untrusted certificate, handshake error).
pub const ZIPDEPLOY_TLS: c_int = 35;
/// Every location of the package (its URL and mirrors) failed; the message
/// lists why each did.
pub const ZIPDEPLOY_MIRRORS_FAILED: c_int = 36;
/// The package's SHA-256 is not the expected one.
pub const ZIPDEPLOY_DIGEST_MISMATCH: c_int = 40;
/// The package's minisign signature does not verify with the key (wrong
/// bytes, another key, malformed, or a legacy non-prehashed signature).
pub const ZIPDEPLOY_SIGNATURE_INVALID: c_int = 41;
/// The package's minisign signature was not found (HTTP 404/410, no file).
pub const ZIPDEPLOY_SIGNATURE_MISSING: c_int = 42;
/// The SHA-256 sidecar file is unusable (too big, no line for the package,
/// ambiguous, not a digest).
pub const ZIPDEPLOY_DIGEST_SIDECAR: c_int = 43;
/// The package is not a ZIP archive.
pub const ZIPDEPLOY_NOT_ZIP: c_int = 50;
/// The archive is corrupt or ambiguous.
pub const ZIPDEPLOY_CORRUPT_ARCHIVE: c_int = 51;
/// An entry would escape the destination or is of a refused kind.
pub const ZIPDEPLOY_UNSAFE_ENTRY: c_int = 52;
/// An entry uses a feature that is not extracted (encryption, ...).
pub const ZIPDEPLOY_UNSUPPORTED_ENTRY: c_int = 53;
/// A resource limit was exceeded (download, total size, entries, ratio,
/// path depth or length, central directory metadata).
pub const ZIPDEPLOY_LIMIT_EXCEEDED: c_int = 60;
/// A filesystem operation failed.
pub const ZIPDEPLOY_IO: c_int = 70;
/// The destination's filesystem has too little free space.
pub const ZIPDEPLOY_NO_SPACE: c_int = 71;
/// A rollback was asked for but no previous release is kept.
pub const ZIPDEPLOY_NO_RELEASE: c_int = 72;
/// A hook refused the staged tree.
pub const ZIPDEPLOY_HOOK: c_int = 80;
/// The progress callback returned non-zero: the deploy was cancelled and the
/// destination left as it was.
pub const ZIPDEPLOY_CANCELLED: c_int = 90;

/// The stage a progress event comes from (the `stage` field of
/// `zipdeploy_progress`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum zipdeploy_stage {
    /// Downloading (or reading) the package and hashing it.
    Fetch = 1,
    /// Extracting entries into the staging directory.
    Extract = 2,
    /// Activating the staged tree.
    Install = 3,
}

/// A progress event, passed to the callback by pointer; valid only during
/// the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct zipdeploy_progress {
    /// A `zipdeploy_stage` value (`ZIPDEPLOY_STAGE_FETCH`, ...).
    pub stage: c_int,
    /// Bytes done in this stage (downloaded, or written by extraction).
    pub bytes: u64,
    /// Bytes expected in this stage; 0 when unknown.
    pub total_bytes: u64,
    /// Entries extracted so far (extract stage).
    pub entries: u64,
    /// Entries in the archive (extract stage); 0 when unknown.
    pub total_entries: u64,
}

/// A progress callback: `userdata` is the pointer given to
/// `zipdeploy_deploy_set_progress`, `progress` is valid only during the call.
///
/// Return 0 to continue, non-zero to cancel: the deploy then fails with
/// `ZIPDEPLOY_CANCELLED` and the destination is left as it was. The callback
/// runs on the thread that called `zipdeploy_deploy_run`. It must not unwind
/// or `longjmp` out, and must not call functions on the same deploy handle
/// (they return `ZIPDEPLOY_BUSY`).
pub type zipdeploy_progress_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, progress: *const zipdeploy_progress) -> c_int,
>;

/// A deploy configuration: one package URL, one destination and options.
///
/// Create with `zipdeploy_deploy_new`, configure with the setters, run with
/// `zipdeploy_deploy_run` (as often as wanted: a second run of the same
/// package is a no-op), release with `zipdeploy_deploy_free`.
///
/// Threading: a handle may be used from any thread, one call at a time; a
/// call made while another call on the same handle is running (from another
/// thread, or from its own progress callback) returns `ZIPDEPLOY_BUSY`.
/// Distinct handles are independent; deploys racing on one destination are
/// serialised by a lock in the destination's state directory.
pub struct zipdeploy_deploy {
    state: Mutex<State>,
}

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

impl zipdeploy_report {
    /// The report with its strings ready to hand out.
    fn new(report: Report) -> Self {
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

impl zipdeploy_status {
    fn new(status: Status) -> Box<zipdeploy_status> {
        Box::new(zipdeploy_status {
            dest: c_string(&status.dest.display().to_string()),
            current: status.current.as_ref().map(CRecord::new),
            kept: status
                .kept
                .iter()
                .map(|r| r.installed.as_ref().map(CRecord::new))
                .collect(),
            status,
        })
    }
}

/// An owned error: a status and its one-line message. Immutable, safe to
/// read from any thread. Release with `zipdeploy_error_free`.
pub struct zipdeploy_error {
    status: c_int,
    message: CString,
}

/// What a handle remembers: the configuration and the last call's outcome.
struct State {
    source: Option<Source>,
    expected: Option<Sha256Digest>,
    dest: Option<PathBuf>,
    limits: Limits,
    fetch: FetchOptions,
    keep: Option<usize>,
    durable: Option<bool>,
    progress: Option<Callback>,
    mirrors: Vec<Source>,
    sidecar: Option<Source>,
    minisign_key: Option<PublicKey>,
    minisign_sig: Option<Source>,
    cache: Option<PathBuf>,
    cache_max_size: Option<u64>,
    last_status: c_int,
    last_error: CString,
}

impl Default for State {
    fn default() -> Self {
        State {
            source: None,
            expected: None,
            dest: None,
            limits: Limits::default(),
            fetch: FetchOptions::default(),
            keep: None,
            durable: None,
            progress: None,
            mirrors: Vec::new(),
            sidecar: None,
            minisign_key: None,
            minisign_sig: None,
            cache: None,
            cache_max_size: None,
            last_status: ZIPDEPLOY_OK,
            last_error: CString::default(),
        }
    }
}

/// The C progress callback and its userdata.
#[derive(Clone, Copy)]
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, *const zipdeploy_progress) -> c_int,
    userdata: *mut c_void,
}

// SAFETY: `Deploy::progress` requires `Send` only because a builder may be
// moved between threads; the pipeline calls the closure solely from the
// thread that runs the deploy (the extractor's helper threads never report),
// i.e. the thread that called `zipdeploy_deploy_run`, and the callback is
// documented to run there. The userdata is never touched by Rust.
unsafe impl Send for Callback {}

impl Callback {
    fn call(&self, p: &Progress) -> ControlFlow<()> {
        let event = zipdeploy_progress {
            stage: match p.stage {
                Stage::Fetch => zipdeploy_stage::Fetch,
                Stage::Extract => zipdeploy_stage::Extract,
                Stage::Install => zipdeploy_stage::Install,
            } as c_int,
            bytes: p.bytes,
            total_bytes: p.total_bytes.unwrap_or(0),
            entries: p.entries,
            total_entries: p.total_entries.unwrap_or(0),
        };
        // SAFETY: `f` and `userdata` were given together by the caller of
        // `zipdeploy_deploy_set_progress`, who promised `f` may be called with
        // that userdata; `&event` lives for the whole call.
        match unsafe { (self.f)(self.userdata, &event) } {
            0 => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    }
}

/// A failed call: its status and message.
struct Failure {
    status: c_int,
    message: String,
}

impl Failure {
    fn new(status: c_int, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    fn null(what: &str) -> Self {
        Failure::new(ZIPDEPLOY_INVALID_ARGUMENT, format!("{what} is NULL"))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = c_int::try_from(e.code()).unwrap_or(ZIPDEPLOY_PANIC);
        Failure::new(status, e.to_string())
    }
}

/// A C string from Rust text; NUL bytes (never expected) become `\0`.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic");
    format!("internal error (panic in zipdeploy): {what}")
}

/// Runs `f`, turning a panic into `on_panic`.
fn boundary<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Reads a string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| Failure::new(ZIPDEPLOY_INVALID_UTF8, format!("{what} is not valid UTF-8")))
}

/// Runs `f` on the state of `deploy` and records its outcome there.
///
/// Returns the status and, on failure, the message.
///
/// # Safety
/// `deploy` is NULL or a live handle from [`zipdeploy_deploy_new`].
unsafe fn with_state<T>(
    deploy: *const zipdeploy_deploy,
    f: impl FnOnce(&mut State) -> Result<T, Failure>,
) -> Result<T, Failure> {
    // SAFETY: the caller promises NULL or a live handle; it is only ever
    // accessed through `&`, all mutation goes through the mutex.
    let Some(handle) = (unsafe { deploy.as_ref() }) else {
        return Err(Failure::null("deploy handle"));
    };
    let mut state = match handle.state.try_lock() {
        Ok(guard) => guard,
        // A panic while locked was already caught; the state is plain data.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            return Err(Failure::new(
                ZIPDEPLOY_BUSY,
                "deploy handle is busy (a call on it is running)",
            ))
        }
    };
    let result = match panic::catch_unwind(AssertUnwindSafe(|| f(&mut state))) {
        Ok(result) => result,
        Err(payload) => Err(Failure::new(ZIPDEPLOY_PANIC, panic_message(&*payload))),
    };
    match &result {
        Ok(_) => {
            state.last_status = ZIPDEPLOY_OK;
            state.last_error = CString::default();
        }
        Err(failure) => {
            state.last_status = failure.status;
            state.last_error = c_string(&failure.message);
        }
    }
    result
}

/// [`with_state`] for a setter: just the status.
///
/// # Safety
/// As for [`with_state`].
unsafe fn set(
    deploy: *mut zipdeploy_deploy,
    f: impl FnOnce(&mut State) -> Result<(), Failure>,
) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        // SAFETY: forwarded from the caller.
        match unsafe { with_state(deploy, f) } {
            Ok(()) => ZIPDEPLOY_OK,
            Err(failure) => failure.status,
        }
    })
}

impl State {
    fn run(&mut self) -> Result<Report, Failure> {
        let source = self.source.clone().ok_or_else(|| {
            Failure::new(
                ZIPDEPLOY_CONFIG,
                "invalid configuration: no package URL set (zipdeploy_deploy_set_url)",
            )
        })?;
        let mut deploy = Deploy::from_source(source)
            .limits(self.limits.clone())
            .fetch_options(self.fetch.clone());
        if let Some(dest) = &self.dest {
            deploy = deploy.dest(dest);
        }
        if let Some(expected) = self.expected {
            deploy = deploy.digest(expected);
        }
        if let Some(keep) = self.keep {
            deploy = deploy.keep(keep);
        }
        if let Some(durable) = self.durable {
            deploy = deploy.durable(durable);
        }
        if let Some(callback) = self.progress {
            deploy = deploy.progress(move |p| callback.call(p));
        }
        for mirror in &self.mirrors {
            deploy = deploy.mirror_source(mirror.clone());
        }
        if let Some(sidecar) = &self.sidecar {
            deploy = deploy.sha256_from_source(sidecar.clone());
        }
        if let Some(key) = &self.minisign_key {
            deploy = deploy.minisign_key(key.clone());
        }
        if let Some(sig) = &self.minisign_sig {
            deploy = deploy.minisign_signature_source(sig.clone());
        }
        if let Some(dir) = &self.cache {
            deploy = deploy.cache(dir);
        }
        if let Some(bytes) = self.cache_max_size {
            deploy = deploy.cache_max_size(bytes);
        }
        Ok(deploy.run()?)
    }

    fn rollback(&mut self) -> Result<Status, Failure> {
        let dest = self.dest.as_ref().ok_or_else(|| {
            Failure::new(
                ZIPDEPLOY_CONFIG,
                "invalid configuration: no destination set (zipdeploy_deploy_set_dest)",
            )
        })?;
        // The progress callback may cancel the wait for a deploy's lock.
        let callback = self.progress;
        let mut waiting =
            || match callback.map(|c| c.call(&Progress::bytes(Stage::Install, 0, None))) {
                Some(ControlFlow::Break(())) => Err(crate::Error::Cancelled),
                _ => Ok(()),
            };
        let durable = self.durable.unwrap_or(false);
        Ok(crate::status::rollback_with(dest, durable, &mut waiting)?.status)
    }
}

/// Stores a new owned error in `error_out` unless it is NULL; returns the
/// status.
///
/// # Safety
/// `error_out` is NULL or a writable `zipdeploy_error *` slot.
unsafe fn put_error(error_out: *mut *mut zipdeploy_error, failure: Failure) -> c_int {
    if !error_out.is_null() {
        let error = Box::new(zipdeploy_error {
            status: failure.status,
            message: c_string(&failure.message),
        });
        // SAFETY: non-NULL, and the caller promises a writable slot.
        unsafe { error_out.write(Box::into_raw(error)) };
    }
    failure.status
}

/// Stores a new status object in `status_out` unless it is NULL.
///
/// # Safety
/// `status_out` is NULL or a writable `zipdeploy_status *` slot.
unsafe fn put_status(status_out: *mut *mut zipdeploy_status, status: Status) {
    if !status_out.is_null() {
        // SAFETY: non-NULL, and the caller promises a writable slot.
        unsafe { status_out.write(Box::into_raw(zipdeploy_status::new(status))) };
    }
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The library version, e.g. `"0.1.0"`; equal to `ZIPDEPLOY_VERSION` when
/// the header matches the library.
///
/// Returns a static string; never NULL, never freed. Thread-safe.
#[no_mangle]
pub extern "C" fn zipdeploy_version() -> *const c_char {
    boundary(c"".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// The class of a status: `status / 10` for a known status (2 usage, 3
/// network, 4 digest, 5 archive, 6 limit, 7 filesystem, 8 hook, 9 cancelled,
/// 1 internal), 0 for `ZIPDEPLOY_OK`, 1 for an unknown status.
///
/// The class is the example CLI's exit status. Thread-safe.
#[no_mangle]
pub extern "C" fn zipdeploy_status_class(status: c_int) -> c_int {
    boundary(1, || match status {
        ZIPDEPLOY_OK => 0,
        s if status_name(s).is_some() => s / 10,
        _ => 1,
    })
}

fn status_name(status: c_int) -> Option<&'static CStr> {
    Some(match status {
        ZIPDEPLOY_OK => c"ok",
        ZIPDEPLOY_PANIC => c"internal error",
        ZIPDEPLOY_INVALID_URL => c"invalid URL",
        ZIPDEPLOY_INVALID_DIGEST => c"invalid digest",
        ZIPDEPLOY_CONFIG => c"invalid configuration",
        ZIPDEPLOY_INVALID_ARGUMENT => c"invalid argument",
        ZIPDEPLOY_INVALID_UTF8 => c"invalid UTF-8",
        ZIPDEPLOY_BUSY => c"handle busy",
        ZIPDEPLOY_HTTP_STATUS => c"HTTP status",
        ZIPDEPLOY_NETWORK => c"network error",
        ZIPDEPLOY_TIMEOUT => c"timeout",
        ZIPDEPLOY_TRUNCATED => c"truncated download",
        ZIPDEPLOY_REDIRECT => c"redirect refused",
        ZIPDEPLOY_TLS => c"TLS error",
        ZIPDEPLOY_MIRRORS_FAILED => c"all mirrors failed",
        ZIPDEPLOY_DIGEST_MISMATCH => c"digest mismatch",
        ZIPDEPLOY_SIGNATURE_INVALID => c"signature invalid",
        ZIPDEPLOY_SIGNATURE_MISSING => c"signature missing",
        ZIPDEPLOY_DIGEST_SIDECAR => c"digest sidecar unusable",
        ZIPDEPLOY_NOT_ZIP => c"not a ZIP archive",
        ZIPDEPLOY_CORRUPT_ARCHIVE => c"corrupt archive",
        ZIPDEPLOY_UNSAFE_ENTRY => c"unsafe entry",
        ZIPDEPLOY_UNSUPPORTED_ENTRY => c"unsupported entry",
        ZIPDEPLOY_LIMIT_EXCEEDED => c"limit exceeded",
        ZIPDEPLOY_IO => c"I/O error",
        ZIPDEPLOY_NO_SPACE => c"no space",
        ZIPDEPLOY_NO_RELEASE => c"no release to roll back to",
        ZIPDEPLOY_HOOK => c"hook failed",
        ZIPDEPLOY_CANCELLED => c"cancelled",
        _ => return None,
    })
}

/// A short name for a status, e.g. `"digest mismatch"` for 40, or
/// `"unknown status"`.
///
/// Returns a static string; never NULL, never freed. Thread-safe.
#[no_mangle]
pub extern "C" fn zipdeploy_status_str(status: c_int) -> *const c_char {
    boundary(c"unknown status".as_ptr(), || {
        status_name(status).unwrap_or(c"unknown status").as_ptr()
    })
}

/// Creates a deploy handle with the library's defaults: no URL, no
/// destination (both required before running), no expected digest, limits
/// of 4 GiB download / 8 GiB uncompressed / 1,000,000 entries, connect
/// timeout 10 s, stall timeout 30 s, no overall deadline, 3 retries, one
/// previous release kept, no sync before activation (see
/// `zipdeploy_deploy_set_durable`), no progress callback. The proxy
/// variables (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl
/// reads them) are read now; the TLS trust store (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, else the system's) when an https request is made.
///
/// Returns a new handle the caller owns and must release with
/// `zipdeploy_deploy_free`, or NULL if it could not be created.
#[no_mangle]
pub extern "C" fn zipdeploy_deploy_new() -> *mut zipdeploy_deploy {
    boundary(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(zipdeploy_deploy {
            state: Mutex::new(State::default()),
        }))
    })
}

/// Releases a deploy handle. NULL is a no-op.
///
/// Pointers returned by `zipdeploy_deploy_last_error` for this handle become
/// invalid; reports and errors it returned stay valid (they are owned
/// separately). Calling this while a call on the handle is running (for
/// example from its progress callback) is a bug; the handle is then leaked
/// rather than freed under the running call.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_free(deploy: *mut zipdeploy_deploy) {
    boundary((), || {
        if deploy.is_null() {
            return;
        }
        {
            // SAFETY: non-NULL, and the caller promises a live handle.
            let handle = unsafe { &*deploy };
            if matches!(handle.state.try_lock(), Err(TryLockError::WouldBlock)) {
                return;
            }
        }
        // SAFETY: the pointer came from `Box::into_raw` in
        // `zipdeploy_deploy_new` and the caller gives up ownership here; no
        // call on it is running (checked above).
        drop(unsafe { Box::from_raw(deploy) });
    })
}

/// Sets the package location: `http://…`, `https://…`, `s3://bucket/key`,
/// `file://…` or a local path. Credentials in the URL (`user:password@`)
/// are sent but never shown in messages or reports.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_URL` (unparsable or
/// unsupported scheme; the previous URL is kept), `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` or `url` is NULL. The string is
/// copied.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_url(
    deploy: *mut zipdeploy_deploy,
    url: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `url` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.source = Some(Source::parse(str_arg(url, "url")?)?);
            Ok(())
        })
    }
}

/// Sets the expected SHA-256 of the package: 64 hex digits, optionally
/// prefixed `sha256:`. NULL clears it (the report then carries the digest
/// seen). With a digest set, a deploy of the digest already installed is a
/// no-op that downloads nothing.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_DIGEST` (the previous digest is
/// kept), `ZIPDEPLOY_INVALID_UTF8`, or `ZIPDEPLOY_INVALID_ARGUMENT` if
/// `deploy` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_sha256(
    deploy: *mut zipdeploy_deploy,
    sha256: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `sha256` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.expected = if sha256.is_null() {
                None
            } else {
                Some(str_arg(sha256, "sha256")?.parse()?)
            };
            Ok(())
        })
    }
}

/// Sets the destination directory (required). Its state directory is
/// `<parent>/.<name>.zipdeploy/`; nothing else is written outside it. When
/// it is a mount point (a volume), the tree goes one level down, into
/// `DEST/current`, with the state in `DEST/.current.zipdeploy/`.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_CONFIG` for an empty path,
/// `ZIPDEPLOY_INVALID_UTF8`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` or
/// `dest` is NULL. The string is copied.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_dest(
    deploy: *mut zipdeploy_deploy,
    dest: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `dest` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            let dest = str_arg(dest, "dest")?;
            if dest.is_empty() {
                return Err(Failure::new(
                    ZIPDEPLOY_CONFIG,
                    "invalid configuration: empty destination directory",
                ));
            }
            s.dest = Some(PathBuf::from(dest));
            Ok(())
        })
    }
}

/// Sets the largest package accepted, in bytes (default 4 GiB); a bigger
/// package fails with `ZIPDEPLOY_LIMIT_EXCEEDED` before or while
/// downloading.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `bytes` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_download(
    deploy: *mut zipdeploy_deploy,
    bytes: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.max_size = positive(bytes, "max_download")?;
            Ok(())
        })
    }
}

/// Sets the largest total uncompressed size of the archive, in bytes
/// (default 8 GiB; the free space at the destination is checked as well).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `bytes` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_total_size(
    deploy: *mut zipdeploy_deploy,
    bytes: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.limits.max_total_size = positive(bytes, "max_total_size")?;
            Ok(())
        })
    }
}

/// Sets the largest number of entries in the archive (default 1,000,000).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `entries` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_entries(
    deploy: *mut zipdeploy_deploy,
    entries: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.limits.max_entries = positive(entries, "max_entries")?;
            Ok(())
        })
    }
}

/// Sets the most components one entry's path may have (default 256); a
/// deeper entry fails with `ZIPDEPLOY_LIMIT_EXCEEDED` before anything is
/// created.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `components` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_path_depth(
    deploy: *mut zipdeploy_deploy,
    components: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.limits.max_path_depth = positive(components, "max_path_depth")?;
            Ok(())
        })
    }
}

/// Sets the most bytes one entry's path may have (default 4096); a longer
/// one fails with `ZIPDEPLOY_LIMIT_EXCEEDED` before anything is created.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `bytes` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_path_length(
    deploy: *mut zipdeploy_deploy,
    bytes: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.limits.max_path_length = positive(bytes, "max_path_length")?;
            Ok(())
        })
    }
}

/// Sets the most bytes of extra fields and comments the central directory
/// may hold, summed over all entries, each extra field counted 32 bytes more
/// (default 64 MiB): the ZIP parser keeps them in memory.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `bytes` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_max_metadata(
    deploy: *mut zipdeploy_deploy,
    bytes: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.limits.max_metadata = positive(bytes, "max_metadata")?;
            Ok(())
        })
    }
}

/// Sets the deadline for the whole download, retries included, in
/// milliseconds; 0 means none (the default).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_timeout_ms(
    deploy: *mut zipdeploy_deploy,
    ms: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.timeout = (ms > 0).then(|| Duration::from_millis(ms));
            Ok(())
        })
    }
}

/// Sets the time allowed to establish a connection (TCP and TLS), in
/// milliseconds (default 10,000).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `ms` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_connect_timeout_ms(
    deploy: *mut zipdeploy_deploy,
    ms: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.connect_timeout = Duration::from_millis(positive(ms, "connect_timeout_ms")?);
            Ok(())
        })
    }
}

/// Sets the longest wait for any bytes once connected, in milliseconds
/// (default 30,000).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `ms` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_stall_timeout_ms(
    deploy: *mut zipdeploy_deploy,
    ms: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.stall_timeout = Duration::from_millis(positive(ms, "stall_timeout_ms")?);
            Ok(())
        })
    }
}

/// Sets the low-speed rule (curl's `--speed-limit`/`--speed-time`): a
/// download averaging fewer than `bytes_per_second` over `time_ms`
/// milliseconds fails as a timeout (`ZIPDEPLOY_TIMEOUT`, retried like one).
/// Default 1024 bytes/s over 30,000 ms; `bytes_per_second` 0 disables it.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `time_ms` is 0 while the rule is on.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_speed_limit(
    deploy: *mut zipdeploy_deploy,
    bytes_per_second: u64,
    time_ms: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            if bytes_per_second > 0 {
                positive(time_ms, "time_ms")?;
            }
            s.fetch.speed_limit = bytes_per_second;
            s.fetch.speed_time = Duration::from_millis(time_ms);
            Ok(())
        })
    }
}

/// Sets how many times a transient network failure (connection error,
/// timeout, 408, 429, 5xx) is retried after the first attempt, with
/// exponential backoff (default 3; 0 disables retries).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_retries(
    deploy: *mut zipdeploy_deploy,
    retries: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.retries = retries;
            Ok(())
        })
    }
}

/// Adds a request header for the package URL, e.g. `PRIVATE-TOKEN: …`
/// (sent on every attempt; never shown in messages). It goes only to the
/// package URL's origin (scheme, host, port), also when a redirect, mirror,
/// sidecar or signature is on that origin; never to another origin (see
/// `zipdeploy_deploy_add_header_for`). Both strings are copied.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_UTF8`, or
/// `ZIPDEPLOY_INVALID_ARGUMENT` if an argument is NULL, the name is empty or
/// not an HTTP token, or the value contains CR or LF.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_add_header(
    deploy: *mut zipdeploy_deploy,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `name` and `value` are NULL or
    // NUL-terminated strings.
    unsafe {
        set(deploy, |s| {
            let (name, value) = header_args(name, value)?;
            s.fetch.headers.push((name, value));
            Ok(())
        })
    }
}

/// Adds a request header for the origin of `origin` (a URL such as
/// `https://mirror.example.net`; only its scheme, host and port count), e.g.
/// a mirror's own token. It goes to every request on that origin and to no
/// other. All strings are copied.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_UTF8`, `ZIPDEPLOY_INVALID_URL`
/// if `origin` is not an http(s) URL, or `ZIPDEPLOY_INVALID_ARGUMENT` as
/// `zipdeploy_deploy_add_header`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_add_header_for(
    deploy: *mut zipdeploy_deploy,
    origin: *const c_char,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `origin`, `name` and `value` are NULL or
    // NUL-terminated strings.
    unsafe {
        set(deploy, |s| {
            let origin = crate::fetch::parse_origin(str_arg(origin, "origin")?)?;
            let (name, value) = header_args(name, value)?;
            s.fetch.origin_headers.push((origin, name, value));
            Ok(())
        })
    }
}

/// A header's name and value from C, checked.
///
/// # Safety
/// Each pointer is NULL or a NUL-terminated string.
unsafe fn header_args(
    name: *const c_char,
    value: *const c_char,
) -> Result<(String, String), Failure> {
    // SAFETY: forwarded contract.
    let (name, value) = unsafe {
        (
            str_arg(name, "header name")?,
            str_arg(value, "header value")?,
        )
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(Failure::new(
            ZIPDEPLOY_INVALID_ARGUMENT,
            format!("invalid header name {name:?}"),
        ));
    }
    if value.contains(['\r', '\n']) {
        return Err(Failure::new(
            ZIPDEPLOY_INVALID_ARGUMENT,
            format!("value of header {name:?} contains a line break"),
        ));
    }
    Ok((name.into(), value.into()))
}

/// Removes every header added with `zipdeploy_deploy_add_header` or
/// `zipdeploy_deploy_add_header_for`.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_clear_headers(deploy: *mut zipdeploy_deploy) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.headers.clear();
            s.fetch.origin_headers.clear();
            Ok(())
        })
    }
}

/// Trusts the CA certificate(s) in the PEM file at `path` for https, in
/// addition to the host's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else
/// the system's): for package servers behind a private CA or a
/// TLS-intercepting proxy, like curl's `--cacert`. The file is read now;
/// call again to add more.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_IO` (the file cannot be read),
/// `ZIPDEPLOY_CONFIG` (no PEM certificate in it), `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if an argument is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_add_cacert_file(
    deploy: *mut zipdeploy_deploy,
    path: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `path` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            let path = PathBuf::from(str_arg(path, "CA certificate file")?);
            let pem = crate::fetch::read_cacert_file(&path)?;
            s.fetch.root_certs_pem.push(pem);
            Ok(())
        })
    }
}

/// Removes every CA certificate added with
/// `zipdeploy_deploy_add_cacert_file`.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_clear_cacerts(deploy: *mut zipdeploy_deploy) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.root_certs_pem.clear();
            Ok(())
        })
    }
}

/// Reads `http(s)://` credentials from the netrc file at `path` (curl's
/// `--netrc-file`; it must exist), each sent only to its own host, instead
/// of the default: the file `NETRC` names, else `$HOME/.netrc`, when it
/// exists. NULL reads no netrc file. The file is read when the deploy runs
/// and refused if group or others may read or write it.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_UTF8`, or
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_netrc_file(
    deploy: *mut zipdeploy_deploy,
    path: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `path` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.fetch.netrc = if path.is_null() {
                crate::netrc::NetrcFile::Disabled
            } else {
                crate::netrc::NetrcFile::Required(PathBuf::from(str_arg(path, "netrc file")?))
            };
            Ok(())
        })
    }
}

/// Sets how many previous releases are kept in the state directory for
/// rollback (default 1; 0 keeps none).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_keep(
    deploy: *mut zipdeploy_deploy,
    releases: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.keep = Some(usize::try_from(releases).unwrap_or(usize::MAX));
            Ok(())
        })
    }
}

/// Sets whether the staged tree is synced to disk before activation:
/// non-zero yes (survives a power cut; costs one `syncfs`), 0 no (the
/// default; a crash or kill of the process is survived either way).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_durable(
    deploy: *mut zipdeploy_deploy,
    durable: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.durable = Some(durable != 0);
            Ok(())
        })
    }
}

/// Fetches `s3://` locations from this S3-compatible endpoint
/// (`http(s)://host[:port]`: MinIO, Ceph, R2, ...), addressed path-style,
/// instead of `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or AWS. NULL
/// restores that default. Credentials and the region come from the standard
/// AWS variables and files (see the README).
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_URL`, `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_s3_endpoint(
    deploy: *mut zipdeploy_deploy,
    endpoint: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `endpoint` is NULL or a NUL-terminated
    // string.
    unsafe {
        set(deploy, |s| {
            s.fetch.s3.endpoint = if endpoint.is_null() {
                None
            } else {
                Some(crate::s3::parse_endpoint(str_arg(
                    endpoint,
                    "s3 endpoint",
                )?)?)
            };
            Ok(())
        })
    }
}

/// Sets whether `s3://` objects on AWS are addressed path-style
/// (`https://s3.REGION.amazonaws.com/BUCKET/KEY`): non-zero yes, 0 no (the
/// default: virtual-hosted style; a custom endpoint is always path-style).
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_s3_path_style(
    deploy: *mut zipdeploy_deploy,
    path_style: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.fetch.s3.path_style = path_style != 0;
            Ok(())
        })
    }
}

/// Sets the progress callback and its `userdata` (passed back unchanged as
/// the callback's first argument); a NULL callback removes it.
///
/// The callback runs on the thread that calls `zipdeploy_deploy_run`, after
/// each chunk downloaded and as extraction advances, and at least every
/// 100 ms while the network is waited for (connecting, a stalled server, a
/// backoff between retries) and while another deploy holds the lock of the
/// destination or of the cache entry: such heartbeat calls repeat the last
/// counts.
/// A non-zero return cancels the deploy (`ZIPDEPLOY_CANCELLED`, destination
/// untouched, work files removed) within about 100 ms of the return, stalled
/// server or not. `userdata` must stay valid while the handle may run.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_progress(
    deploy: *mut zipdeploy_deploy,
    callback: zipdeploy_progress_callback,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract; the callback and userdata are stored
    // together and only used as a pair (see `Callback::call`).
    unsafe {
        set(deploy, |s| {
            s.progress = callback.map(|f| Callback { f, userdata });
            Ok(())
        })
    }
}

/// Reads the expected SHA-256 from a sidecar file at `url` (e.g.
/// `https://host/app.zip.sha256`): `HEX  FILENAME`, `HEX *FILENAME`, a bare
/// `HEX` or `SHA256 (FILENAME) = HEX`; with several lines, the one naming
/// the package's file name. It is fetched with the same network options and
/// may be at most 64 KiB. NULL clears it. Exclusive with
/// `zipdeploy_deploy_set_sha256` (running with both is `ZIPDEPLOY_CONFIG`).
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_URL`, `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL. A sidecar that cannot
/// be fetched fails the run as the package would (`ZIPDEPLOY_HTTP_STATUS`,
/// `ZIPDEPLOY_NETWORK`, ...); one fetched but unusable (no digest, none for
/// this package) fails it with `ZIPDEPLOY_DIGEST_SIDECAR`, one over 64 KiB
/// with `ZIPDEPLOY_LIMIT_EXCEEDED`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_sha256_from(
    deploy: *mut zipdeploy_deploy,
    url: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `url` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.sidecar = if url.is_null() {
                None
            } else {
                Some(Source::parse(str_arg(url, "sha256_from")?)?)
            };
            Ok(())
        })
    }
}

/// Adds a mirror: another location of the same package, tried in order
/// after the URL (and earlier mirrors) fail or serve a package that does
/// not verify. Each location gets the retry policy. The string is copied.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_URL`, `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if an argument is NULL. When every
/// location fails, the run returns `ZIPDEPLOY_MIRRORS_FAILED`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_add_mirror(
    deploy: *mut zipdeploy_deploy,
    url: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `url` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.mirrors.push(Source::parse(str_arg(url, "mirror")?)?);
            Ok(())
        })
    }
}

/// Removes every mirror added with `zipdeploy_deploy_add_mirror`.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_clear_mirrors(deploy: *mut zipdeploy_deploy) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.mirrors.clear();
            Ok(())
        })
    }
}

/// Requires a minisign signature of the package by this public key: the
/// base64 key (`RWQ…`) or the path of a `minisign.pub` file (read now).
/// The signature is fetched from the package location + `.minisig` unless
/// `zipdeploy_deploy_set_minisign_sig` names it, and verified over the bytes
/// downloaded before anything is activated. NULL removes the requirement.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_CONFIG` (not a minisign public key),
/// `ZIPDEPLOY_IO` (the file cannot be read), `ZIPDEPLOY_INVALID_UTF8`, or
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL. A bad signature fails
/// the run with `ZIPDEPLOY_SIGNATURE_INVALID`, a missing one with
/// `ZIPDEPLOY_SIGNATURE_MISSING`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_minisign_key(
    deploy: *mut zipdeploy_deploy,
    key: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `key` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.minisign_key = if key.is_null() {
                None
            } else {
                Some(PublicKey::from_arg(str_arg(key, "minisign key")?)?)
            };
            Ok(())
        })
    }
}

/// Sets where the minisign signature is (a URL or a path) instead of the
/// package location + `.minisig`; NULL restores that default.
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_INVALID_URL`, `ZIPDEPLOY_INVALID_UTF8`,
/// or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_minisign_sig(
    deploy: *mut zipdeploy_deploy,
    location: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `location` is NULL or a NUL-terminated
    // string.
    unsafe {
        set(deploy, |s| {
            s.minisign_sig = if location.is_null() {
                None
            } else {
                Some(Source::parse(str_arg(location, "minisign signature")?)?)
            };
            Ok(())
        })
    }
}

/// Uses a download cache in `dir` (`<dir>/sha256/<hex>.zip`), which the
/// deploys of a host can share: with an expected digest, a cached package
/// is re-hashed and used without any network request, and concurrent
/// deploys of one digest download it once. NULL disables it (the default).
///
/// Returns `ZIPDEPLOY_OK`, `ZIPDEPLOY_CONFIG` for an empty path,
/// `ZIPDEPLOY_INVALID_UTF8`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_cache(
    deploy: *mut zipdeploy_deploy,
    dir: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract: `dir` is NULL or a NUL-terminated string.
    unsafe {
        set(deploy, |s| {
            s.cache = if dir.is_null() {
                None
            } else {
                let dir = str_arg(dir, "cache")?;
                if dir.is_empty() {
                    return Err(Failure::new(
                        ZIPDEPLOY_CONFIG,
                        "invalid configuration: empty cache directory",
                    ));
                }
                Some(PathBuf::from(dir))
            };
            Ok(())
        })
    }
}

/// Sets the largest total size of the cache's entries, in bytes (default
/// 10 GiB); least recently used entries are evicted after an insert, never
/// one in use.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL
/// or `bytes` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_cache_max_size(
    deploy: *mut zipdeploy_deploy,
    bytes: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            s.cache_max_size = Some(positive(bytes, "cache_max_size")?);
            Ok(())
        })
    }
}

/// Swaps the most recent kept release back into the handle's destination,
/// atomically and under the destination's lock; the tree it replaces
/// becomes the newest kept release (a second rollback returns to where the
/// first started). Uses the handle's destination and durability setting,
/// and its progress callback only as a heartbeat (stage
/// `ZIPDEPLOY_STAGE_INSTALL`, counts 0) about every 100 ms while a deploy
/// holds the lock: a non-zero return cancels (`ZIPDEPLOY_CANCELLED`).
///
/// On success returns `ZIPDEPLOY_OK` and, if `status_out` is not NULL,
/// stores a new status of the destination (as after the rollback) that the
/// caller releases with `zipdeploy_status_free`. On failure returns the
/// status (`ZIPDEPLOY_NO_RELEASE` when nothing is kept, `ZIPDEPLOY_CONFIG`
/// without a destination, `ZIPDEPLOY_BUSY`, ...), stores a new error in
/// `error_out` if it is not NULL, and leaves the destination as it was.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_rollback(
    deploy: *mut zipdeploy_deploy,
    status_out: *mut *mut zipdeploy_status,
    error_out: *mut *mut zipdeploy_error,
) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        // SAFETY: forwarded contract.
        match unsafe { with_state(deploy, State::rollback) } {
            Ok(status) => {
                // SAFETY: forwarded contract: NULL or a writable slot.
                unsafe { put_status(status_out, status) };
                ZIPDEPLOY_OK
            }
            // SAFETY: forwarded contract: NULL or a writable slot.
            Err(failure) => unsafe { put_error(error_out, failure) },
        }
    })
}

/// Reads what is installed at `dest` (no handle needed). Writes nothing and
/// takes no lock, so it does not wait for a deploy in progress.
///
/// On success returns `ZIPDEPLOY_OK` and, if `status_out` is not NULL,
/// stores a new status the caller releases with `zipdeploy_status_free` —
/// also when nothing is installed (`zipdeploy_status_installed` is then 0).
/// On failure (`ZIPDEPLOY_INVALID_ARGUMENT` for a NULL `dest`,
/// `ZIPDEPLOY_INVALID_UTF8`, `ZIPDEPLOY_CONFIG` for a path without a final
/// name) stores a new error in `error_out` if it is not NULL.
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
                unsafe { put_status(status_out, status) };
                ZIPDEPLOY_OK
            }
            // SAFETY: forwarded contract: NULL or a writable slot.
            Err(failure) => unsafe { put_error(error_out, failure) },
        }
    })
}

/// Borrows the status behind a pointer.
///
/// # Safety
/// `status` is NULL or a live status from [`zipdeploy_status_read`] or
/// [`zipdeploy_deploy_rollback`].
unsafe fn status_ref<'a>(status: *const zipdeploy_status) -> Option<&'a zipdeploy_status> {
    // SAFETY: the caller promises NULL or a live status, which is immutable.
    unsafe { status.as_ref() }
}

/// The installed record (`index` < 0) or kept release `index`, if known.
///
/// # Safety
/// As for [`status_ref`].
unsafe fn status_record<'a>(
    status: *const zipdeploy_status,
    index: Option<u64>,
) -> Option<&'a CRecord> {
    // SAFETY: forwarded contract.
    let s = unsafe { status_ref(status) }?;
    match index {
        None => s.current.as_ref(),
        Some(i) => s.kept.get(usize::try_from(i).ok()?)?.as_ref(),
    }
}

/// 1 if zipdeploy installed what the destination holds, 0 if not (nothing
/// there, or a tree it has no record of) or if `status` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_installed(status: *const zipdeploy_status) -> c_int {
    boundary(0, || {
        // SAFETY: forwarded contract.
        c_int::from(unsafe { status_ref(status) }.is_some_and(|s| s.status.current.is_some()))
    })
}

/// Where the tree is, absolute: the destination, or `DEST/current` when the
/// destination is a mount point. Borrowed from the status: valid
/// until `zipdeploy_status_free`. `""` if `status` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_dest(status: *const zipdeploy_status) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract.
        unsafe { status_ref(status) }.map_or(c"".as_ptr(), |s| s.dest.as_ptr())
    })
}

/// Reads a string of a record; `""` when there is none.
///
/// # Safety
/// As for [`status_ref`].
unsafe fn record_str(
    status: *const zipdeploy_status,
    index: Option<u64>,
    f: impl FnOnce(&CRecord) -> &CString,
) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract.
        unsafe { status_record(status, index) }.map_or(c"".as_ptr(), |r| f(r).as_ptr())
    })
}

/// Reads a number of a record; 0 when there is none.
///
/// # Safety
/// As for [`status_ref`].
unsafe fn record_u64(
    status: *const zipdeploy_status,
    index: Option<u64>,
    f: impl FnOnce(&Installed) -> u64,
) -> u64 {
    boundary(0, || {
        // SAFETY: forwarded contract.
        unsafe { status_record(status, index) }.map_or(0, |r| f(&r.installed))
    })
}

/// The SHA-256 of the installed package (64 hex digits), `""` when nothing
/// is installed or `status` is NULL. Borrowed: valid until
/// `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_digest(status: *const zipdeploy_status) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, None, |r| &r.digest) }
}

/// Where the installed package came from, credentials redacted; `""` when
/// nothing is installed. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_source(status: *const zipdeploy_status) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, None, |r| &r.source) }
}

/// The id of the minisign key whose signature of the installed package was
/// verified; `""` if none was. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_signed_by(
    status: *const zipdeploy_status,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, None, |r| &r.signed_by) }
}

/// When the installed package was activated, in seconds since the Unix
/// epoch; 0 when nothing is installed.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_installed_at(status: *const zipdeploy_status) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, None, |r| r.installed_at) }
}

/// Size of the installed package in bytes; 0 when nothing is installed.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_package_size(status: *const zipdeploy_status) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, None, |r| r.package_size) }
}

/// How many previous releases are kept for rollback (0 for NULL). Index
/// them with the `zipdeploy_status_kept_*` getters, 0 the oldest; the last
/// is the one a rollback brings back.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_count(status: *const zipdeploy_status) -> u64 {
    boundary(0, || {
        // SAFETY: forwarded contract.
        unsafe { status_ref(status) }.map_or(0, |s| s.kept.len() as u64)
    })
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
    unsafe { record_str(status, Some(index), |r| &r.digest) }
}

/// Where kept release `index` came from, credentials redacted; `""` when
/// unknown. Borrowed: valid until `zipdeploy_status_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_source(
    status: *const zipdeploy_status,
    index: u64,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { record_str(status, Some(index), |r| &r.source) }
}

/// When kept release `index` was activated (Unix seconds); 0 when unknown.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_installed_at(
    status: *const zipdeploy_status,
    index: u64,
) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Some(index), |r| r.installed_at) }
}

/// Size of kept release `index`'s package in bytes; 0 when unknown.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_kept_package_size(
    status: *const zipdeploy_status,
    index: u64,
) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { record_u64(status, Some(index), |r| r.package_size) }
}

/// Releases a status. NULL is a no-op. Strings borrowed from it become
/// invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_status_free(status: *mut zipdeploy_status) {
    boundary((), || {
        if !status.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `put_status`
            // and the caller gives up ownership here.
            drop(unsafe { Box::from_raw(status) });
        }
    })
}

/// Fetches, verifies, extracts and installs the package. Blocks until done.
///
/// On success returns `ZIPDEPLOY_OK` and, if `report_out` is not NULL, stores
/// a new report there that the caller owns and releases with
/// `zipdeploy_report_free`. On failure returns the status, stores (if
/// `error_out` is not NULL) a new error that the caller owns and releases
/// with `zipdeploy_error_free`, and leaves the destination exactly as it
/// was; the status and message are also kept on the handle
/// (`zipdeploy_deploy_last_error`). Each out-pointer is written only in its
/// case, so initialise both to NULL.
///
/// Returns `ZIPDEPLOY_CONFIG` if no URL or destination is set,
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL, `ZIPDEPLOY_BUSY` if the
/// handle is running already, otherwise a status of the deploy.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_run(
    deploy: *mut zipdeploy_deploy,
    report_out: *mut *mut zipdeploy_report,
    error_out: *mut *mut zipdeploy_error,
) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        // SAFETY: forwarded contract.
        match unsafe { with_state(deploy, State::run) } {
            Ok(report) => {
                if !report_out.is_null() {
                    let report = Box::new(zipdeploy_report::new(report));
                    // SAFETY: non-NULL, and the caller promises a writable
                    // `zipdeploy_report *` slot.
                    unsafe { report_out.write(Box::into_raw(report)) };
                }
                ZIPDEPLOY_OK
            }
            Err(failure) => {
                if !error_out.is_null() {
                    let error = Box::new(zipdeploy_error {
                        status: failure.status,
                        message: c_string(&failure.message),
                    });
                    // SAFETY: non-NULL, and the caller promises a writable
                    // `zipdeploy_error *` slot.
                    unsafe { error_out.write(Box::into_raw(error)) };
                }
                failure.status
            }
        }
    })
}

/// The status of the last call on this handle that returns a status
/// (`ZIPDEPLOY_OK` after a success), or `ZIPDEPLOY_INVALID_ARGUMENT` if
/// `deploy` is NULL, `ZIPDEPLOY_BUSY` while a call on it is running.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_last_status(deploy: *const zipdeploy_deploy) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        // SAFETY: forwarded contract: NULL or a live handle.
        let Some(handle) = (unsafe { deploy.as_ref() }) else {
            return ZIPDEPLOY_INVALID_ARGUMENT;
        };
        match handle.state.try_lock() {
            Ok(state) => state.last_status,
            Err(TryLockError::Poisoned(p)) => p.into_inner().last_status,
            Err(TryLockError::WouldBlock) => ZIPDEPLOY_BUSY,
        }
    })
}

/// The message of the last failed call on this handle, e.g. `"HTTP status
/// 404 fetching http://host/app.zip"`; `""` after a success or when `deploy`
/// is NULL.
///
/// The string is borrowed from the handle: valid until the next call on this
/// handle other than `zipdeploy_deploy_last_status`/`_last_error`, or
/// `zipdeploy_deploy_free`. Copy it to keep it. Never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_last_error(
    deploy: *const zipdeploy_deploy,
) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract: NULL or a live handle.
        let Some(handle) = (unsafe { deploy.as_ref() }) else {
            return c"".as_ptr();
        };
        match handle.state.try_lock() {
            // The CString's buffer does not move until the message is
            // replaced by a later call or the handle is freed.
            Ok(state) => state.last_error.as_ptr(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().last_error.as_ptr(),
            Err(TryLockError::WouldBlock) => {
                c"deploy handle is busy (a call on it is running)".as_ptr()
            }
        }
    })
}

/// Borrows the report behind a pointer.
///
/// # Safety
/// `report` is NULL or a live report from [`zipdeploy_deploy_run`].
unsafe fn report_ref<'a>(report: *const zipdeploy_report) -> Option<&'a zipdeploy_report> {
    // SAFETY: the caller promises NULL or a live report, which is immutable.
    unsafe { report.as_ref() }
}

/// Reads a number from a report; 0 for NULL.
///
/// # Safety
/// As for [`report_ref`].
unsafe fn report_u64(report: *const zipdeploy_report, f: impl FnOnce(&Report) -> u64) -> u64 {
    boundary(0, || {
        // SAFETY: forwarded contract.
        unsafe { report_ref(report) }.map_or(0, |r| f(&r.report))
    })
}

/// Reads a string from a report; `""` for NULL.
///
/// # Safety
/// As for [`report_ref`].
unsafe fn report_str(
    report: *const zipdeploy_report,
    f: impl FnOnce(&zipdeploy_report) -> &CString,
) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract.
        unsafe { report_ref(report) }.map_or(c"".as_ptr(), |r| f(r).as_ptr())
    })
}

/// The SHA-256 of the installed package, 64 lowercase hex digits.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_digest(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { report_str(report, |r| &r.digest) }
}

/// The package location with credentials redacted.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_source(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { report_str(report, |r| &r.source) }
}

/// Where the tree is, absolute: the destination, or `DEST/current` when the
/// destination is a mount point.
///
/// Borrowed from the report: valid until `zipdeploy_report_free`. `""` if
/// `report` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_dest(report: *const zipdeploy_report) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { report_str(report, |r| &r.dest) }
}

/// 1 if that digest was already installed and nothing was done, else 0 (also
/// for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_noop(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| u64::from(r.noop)) as c_int }
}

/// 1 if entries were extracted while the package downloaded, else 0 (also
/// for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_streamed(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| u64::from(r.streamed)) as c_int }
}

/// 1 if the server answered `304 Not Modified` to a conditional request
/// (no digest pinned; the installed package's validators were sent), so
/// nothing was downloaded or extracted; else 0 (also for NULL). The report
/// is then a no-op too.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_not_modified(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| u64::from(r.not_modified)) as c_int }
}

/// 1 if the package came from the download cache (re-verified), else 0
/// (also for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_cache_hit(report: *const zipdeploy_report) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| u64::from(r.cache_hit)) as c_int }
}

/// The id of the minisign key whose signature was verified (16 hex
/// digits), `""` if none was or `report` is NULL. Borrowed from the report:
/// valid until `zipdeploy_report_free`.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_signed_by(
    report: *const zipdeploy_report,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { report_str(report, |r| &r.signed_by) }
}

/// Bytes downloaded by this run (0 for a no-op or a local package; for a
/// download resumed from an earlier run's, only the rest; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_bytes_downloaded(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.bytes_downloaded) }
}

/// Size of the package in bytes (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_package_size(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.package_size) }
}

/// Entries in the archive (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_entries(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.entries) }
}

/// Regular files written (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_files(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.files) }
}

/// Directories created (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_dirs(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.dirs) }
}

/// Symlinks created (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_symlinks(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.symlinks) }
}

/// Bytes written into files (0 for a no-op; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_bytes_written(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| r.bytes_written) }
}

/// Milliseconds spent downloading (or reading) and hashing (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_fetch_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| millis(r.timings.fetch)) }
}

/// Milliseconds spent extracting into the staging directory (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_extract_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| millis(r.timings.extract)) }
}

/// Milliseconds spent activating the staged tree (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_install_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| millis(r.timings.install)) }
}

/// Milliseconds for the whole deploy, waiting for the lock included (0 for
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_total_ms(report: *const zipdeploy_report) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { report_u64(report, |r| millis(r.timings.total)) }
}

/// How many warnings the deploy left (0 for NULL): leftovers of an earlier
/// run that could not be removed and were set aside in the state directory
/// (tried again by every later run). They did not stop the deploy.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_warning_count(report: *const zipdeploy_report) -> u64 {
    boundary(0, || {
        // SAFETY: forwarded contract.
        unsafe { report_ref(report) }.map_or(0, |r| r.warnings.len() as u64)
    })
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
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract.
        let warning = unsafe { report_ref(report) }
            .and_then(|r| r.warnings.get(usize::try_from(index).ok()?));
        warning.map_or(c"".as_ptr(), |w| w.as_ptr())
    })
}

/// Releases a report. NULL is a no-op. Strings borrowed from it become
/// invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_report_free(report: *mut zipdeploy_report) {
    boundary((), || {
        if !report.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in
            // `zipdeploy_deploy_run` and the caller gives up ownership here.
            drop(unsafe { Box::from_raw(report) });
        }
    })
}

/// The status of an error (never `ZIPDEPLOY_OK`), or
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `error` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_code(error: *const zipdeploy_error) -> c_int {
    boundary(ZIPDEPLOY_PANIC, || {
        // SAFETY: forwarded contract: NULL or a live error.
        unsafe { error.as_ref() }.map_or(ZIPDEPLOY_INVALID_ARGUMENT, |e| e.status)
    })
}

/// The class of an error's status (`zipdeploy_status_class`), or 2 (usage)
/// if `error` is NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_class(error: *const zipdeploy_error) -> c_int {
    // SAFETY: forwarded contract.
    zipdeploy_status_class(unsafe { zipdeploy_error_code(error) })
}

/// The one-line message of an error, naming its cause (entry, limit,
/// digests, HTTP status); credentials are never included.
///
/// Borrowed from the error: valid until `zipdeploy_error_free`. `""` if
/// `error` is NULL; never NULL.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_message(error: *const zipdeploy_error) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: forwarded contract: NULL or a live error.
        unsafe { error.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
    })
}

/// Releases an error. NULL is a no-op. Its message becomes invalid.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_error_free(error: *mut zipdeploy_error) {
    boundary((), || {
        if !error.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in
            // `zipdeploy_deploy_run` and the caller gives up ownership here.
            drop(unsafe { Box::from_raw(error) });
        }
    })
}

/// A positive number, or `ZIPDEPLOY_INVALID_ARGUMENT`.
fn positive(n: u64, what: &str) -> Result<u64, Failure> {
    if n == 0 {
        Err(Failure::new(
            ZIPDEPLOY_INVALID_ARGUMENT,
            format!("{what} must be greater than 0"),
        ))
    } else {
        Ok(n)
    }
}

/// Sets the most connections one download uses (default 8; 1 keeps a
/// single connection): when the server serves byte ranges of the package
/// and one connection is the bottleneck (a per-connection cap), the rest is
/// fetched in ranges over several connections at once, still hashed and
/// extracted in order.
///
/// Returns `ZIPDEPLOY_OK`, or `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is
/// NULL or `connections` is 0.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_set_connections(
    deploy: *mut zipdeploy_deploy,
    connections: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        set(deploy, |s| {
            if connections == 0 {
                return Err(Failure::new(
                    ZIPDEPLOY_INVALID_ARGUMENT,
                    "connections must be at least 1",
                ));
            }
            s.fetch.connections = connections;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// What build.rs generated from this file; see build.rs for the design.
    const GENERATED_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/zipdeploy.h"));

    #[test]
    fn committed_header_is_the_generated_one() {
        assert!(
            GENERATED_HEADER.contains("#define ZIPDEPLOY_H"),
            "cbindgen failed in build.rs: {GENERATED_HEADER}"
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/zipdeploy.h");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == GENERATED_HEADER,
            "include/zipdeploy.h is not what src/ffi.rs generates. Regenerate it with \
             `cargo build` (without ZIPDEPLOY_CHECK_HEADER or CI set), review the diff \
             and commit it."
        );
        let version = format!(
            "#define ZIPDEPLOY_VERSION \"{}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(GENERATED_HEADER.contains(&version));
        assert!(GENERATED_HEADER.contains("ZIPDEPLOY_STAGE_FETCH = 1"));
    }

    fn text(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: every string getter returns a NUL-terminated string that
        // is valid at least until the next call on its handle.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
    }

    fn cs(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// A small package in `dir`; returns its path and SHA-256.
    fn package(dir: &Path, version: &str) -> (PathBuf, String) {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        w.start_file("VERSION", options).unwrap();
        w.write_all(version.as_bytes()).unwrap();
        w.add_directory("static/", options).unwrap();
        w.start_file("static/app.css", options).unwrap();
        w.write_all(b"body {}\n").unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let path = dir.join(format!("app-{version}.zip"));
        std::fs::write(&path, &bytes).unwrap();
        (path, Sha256Digest::of(&bytes).to_hex())
    }

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
        assert_eq!(cancelled.status, ZIPDEPLOY_CANCELLED);
        let mismatch = Failure::from(Error::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert_eq!(mismatch.status, ZIPDEPLOY_DIGEST_MISMATCH);
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
            assert_eq!(Failure::from(error).status, status);
            assert!(status_name(status).is_some(), "{status} has a name");
        }
    }

    #[test]
    fn null_arguments_give_a_status_never_a_crash() {
        let null = std::ptr::null_mut();
        let url = cs("http://example.com/a.zip");
        // SAFETY: NULL handles and NULL strings are part of the contract;
        // `url` outlives the calls.
        unsafe {
            assert_eq!(
                zipdeploy_deploy_set_url(null, url.as_ptr()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_dest(null, url.as_ptr()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_sha256(null, std::ptr::null()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_retries(null, 1),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_progress(null, None, null.cast()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_run(null, null.cast(), null.cast()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_last_status(null),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(text(zipdeploy_deploy_last_error(null)), "");
            zipdeploy_deploy_free(null);
            zipdeploy_report_free(null.cast());
            zipdeploy_error_free(null.cast());
            assert_eq!(text(zipdeploy_report_digest(null.cast())), "");
            assert_eq!(zipdeploy_report_files(null.cast()), 0);
            assert_eq!(zipdeploy_report_noop(null.cast()), 0);
            assert_eq!(
                zipdeploy_error_code(null.cast()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(zipdeploy_error_class(null.cast()), 2);
            assert_eq!(text(zipdeploy_error_message(null.cast())), "");

            // A NULL run on error_out still yields an owned error.
            let mut error: *mut zipdeploy_error = std::ptr::null_mut();
            assert_eq!(
                zipdeploy_deploy_run(null, null.cast(), &mut error),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                text(zipdeploy_error_message(error)),
                "deploy handle is NULL"
            );
            zipdeploy_error_free(error);

            let d = zipdeploy_deploy_new();
            assert_eq!(
                zipdeploy_deploy_set_url(d, std::ptr::null()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(zipdeploy_deploy_last_status(d), ZIPDEPLOY_INVALID_ARGUMENT);
            assert_eq!(text(zipdeploy_deploy_last_error(d)), "url is NULL");
            assert_eq!(
                zipdeploy_deploy_add_header(d, url.as_ptr(), std::ptr::null()),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            zipdeploy_deploy_free(d);
        }
    }

    #[test]
    fn the_progress_callback_cancels_a_rollback_waiting_for_the_lock() {
        unsafe extern "C" fn stop(_: *mut c_void, p: *const zipdeploy_progress) -> c_int {
            // SAFETY: the library passes a valid event.
            let stage = unsafe { (*p).stage };
            assert_eq!(stage, zipdeploy_stage::Install as c_int);
            1
        }
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        let layout = crate::install::Layout::new(&dest).unwrap();
        let _held = layout.lock().unwrap();
        let dest = cs(dest.to_str().unwrap());
        // SAFETY: `d` is a live handle from `zipdeploy_deploy_new`; the
        // strings outlive the calls; `stop` ignores its userdata.
        unsafe {
            let d = zipdeploy_deploy_new();
            assert_eq!(zipdeploy_deploy_set_dest(d, dest.as_ptr()), ZIPDEPLOY_OK);
            assert_eq!(
                zipdeploy_deploy_set_progress(d, Some(stop), std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            let started = std::time::Instant::now();
            let status = zipdeploy_deploy_rollback(d, std::ptr::null_mut(), std::ptr::null_mut());
            assert_eq!(status, ZIPDEPLOY_CANCELLED);
            assert!(started.elapsed() < Duration::from_secs(1));
            zipdeploy_deploy_free(d);
        }
    }

    #[test]
    fn s3_setters_validate_and_reach_the_fetch_options() {
        let bad = cs("ftp://u:hunter22@x");
        let good = cs("http://127.0.0.1:9000");
        // SAFETY: `d` is a live handle from `zipdeploy_deploy_new`; the
        // strings outlive the calls.
        unsafe {
            let d = zipdeploy_deploy_new();
            assert_eq!(
                zipdeploy_deploy_set_s3_endpoint(d, bad.as_ptr()),
                ZIPDEPLOY_INVALID_URL
            );
            assert!(!text(zipdeploy_deploy_last_error(d)).contains("hunter22"));
            assert_eq!(
                zipdeploy_deploy_set_s3_endpoint(d, good.as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(zipdeploy_deploy_set_s3_path_style(d, 1), ZIPDEPLOY_OK);
            {
                let state = (*d).state.lock().unwrap();
                let endpoint = state.fetch.s3.endpoint.as_ref().map(|u| u.as_str());
                assert_eq!(endpoint, Some("http://127.0.0.1:9000/"));
                assert!(state.fetch.s3.path_style);
            }
            assert_eq!(
                zipdeploy_deploy_set_s3_endpoint(d, std::ptr::null()),
                ZIPDEPLOY_OK
            );
            assert!((*d).state.lock().unwrap().fetch.s3.endpoint.is_none());
            assert_eq!(
                zipdeploy_deploy_set_s3_path_style(std::ptr::null_mut(), 1),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            zipdeploy_deploy_free(d);
        }
    }

    #[test]
    fn setters_validate_and_keep_the_previous_value() {
        // SAFETY: `d` is live until freed at the end; strings outlive calls.
        unsafe {
            let d = zipdeploy_deploy_new();
            assert!(!d.is_null());
            let bad_utf8 = b"http://\xff.zip\0";
            assert_eq!(
                zipdeploy_deploy_set_url(d, bad_utf8.as_ptr().cast()),
                ZIPDEPLOY_INVALID_UTF8
            );
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs("ftp://x/a.zip").as_ptr()),
                ZIPDEPLOY_INVALID_URL
            );
            assert!(text(zipdeploy_deploy_last_error(d)).contains("unsupported scheme"));
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs("http://u:secret@example.com/a.zip").as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                text(zipdeploy_deploy_last_error(d)),
                "",
                "success clears the message"
            );
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs("").as_ptr()),
                ZIPDEPLOY_INVALID_URL
            );
            assert_eq!(
                zipdeploy_deploy_set_sha256(d, cs("abc").as_ptr()),
                ZIPDEPLOY_INVALID_DIGEST
            );
            assert_eq!(
                zipdeploy_deploy_set_sha256(d, std::ptr::null()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_dest(d, cs("").as_ptr()),
                ZIPDEPLOY_CONFIG
            );
            assert_eq!(
                zipdeploy_deploy_set_max_download(d, 0),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_max_total_size(d, 0),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_max_entries(d, 0),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            for set_path_limit in [
                zipdeploy_deploy_set_max_path_depth,
                zipdeploy_deploy_set_max_path_length,
                zipdeploy_deploy_set_max_metadata,
            ] {
                assert_eq!(set_path_limit(d, 0), ZIPDEPLOY_INVALID_ARGUMENT);
                assert_eq!(set_path_limit(d, 300), ZIPDEPLOY_OK);
            }
            assert_eq!(
                zipdeploy_deploy_set_connect_timeout_ms(d, 0),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(
                zipdeploy_deploy_set_stall_timeout_ms(d, 0),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(zipdeploy_deploy_set_timeout_ms(d, 0), ZIPDEPLOY_OK);
            let header =
                |n: &str, v: &str| zipdeploy_deploy_add_header(d, cs(n).as_ptr(), cs(v).as_ptr());
            assert_eq!(header("Authorization", "Bearer x"), ZIPDEPLOY_OK);
            assert_eq!(header("Bad Name", "x"), ZIPDEPLOY_INVALID_ARGUMENT);
            assert_eq!(header("", "x"), ZIPDEPLOY_INVALID_ARGUMENT);
            assert_eq!(
                header("X-A", "a\r\nX-Injected: 1"),
                ZIPDEPLOY_INVALID_ARGUMENT
            );
            assert_eq!(zipdeploy_deploy_clear_headers(d), ZIPDEPLOY_OK);

            // No destination: the library's configuration error.
            let mut error: *mut zipdeploy_error = std::ptr::null_mut();
            let mut report: *mut zipdeploy_report = std::ptr::null_mut();
            assert_eq!(
                zipdeploy_deploy_run(d, &mut report, &mut error),
                ZIPDEPLOY_CONFIG
            );
            assert!(report.is_null(), "no report on failure");
            assert_eq!(zipdeploy_error_code(error), ZIPDEPLOY_CONFIG);
            assert_eq!(zipdeploy_error_class(error), 2);
            assert!(text(zipdeploy_error_message(error)).contains("no destination"));
            zipdeploy_error_free(error);
            zipdeploy_deploy_free(d);

            // No URL.
            let d = zipdeploy_deploy_new();
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_CONFIG
            );
            assert!(text(zipdeploy_deploy_last_error(d)).contains("no package URL"));
            zipdeploy_deploy_free(d);
        }
    }

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

    #[test]
    fn deploys_reports_and_redeploys_as_a_noop() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg, sha) = package(tmp.path(), "1");
        let dest = tmp.path().join("app");
        // SAFETY: `d` is live until freed; strings outlive the calls; the
        // report is read before it is freed.
        unsafe {
            let d = zipdeploy_deploy_new();
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_sha256(d, cs(&sha).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_dest(d, cs(dest.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(zipdeploy_deploy_set_durable(d, 0), ZIPDEPLOY_OK);
            assert_eq!(zipdeploy_deploy_set_keep(d, 0), ZIPDEPLOY_OK);
            let mut report: *mut zipdeploy_report = std::ptr::null_mut();
            let mut error: *mut zipdeploy_error = std::ptr::null_mut();
            assert_eq!(
                zipdeploy_deploy_run(d, &mut report, &mut error),
                ZIPDEPLOY_OK,
                "{}",
                text(zipdeploy_deploy_last_error(d))
            );
            assert!(error.is_null(), "no error on success");
            assert_eq!(text(zipdeploy_report_digest(report)), sha);
            assert_eq!(
                text(zipdeploy_report_source(report)),
                pkg.display().to_string()
            );
            assert_eq!(
                text(zipdeploy_report_dest(report)),
                dest.display().to_string()
            );
            assert_eq!(zipdeploy_report_noop(report), 0);
            assert_eq!(zipdeploy_report_entries(report), 3);
            assert_eq!(zipdeploy_report_files(report), 2);
            assert_eq!(zipdeploy_report_bytes_written(report), 1 + 8);
            assert_eq!(
                zipdeploy_report_bytes_downloaded(report),
                0,
                "local package"
            );
            assert_eq!(
                zipdeploy_report_package_size(report),
                std::fs::metadata(&pkg).unwrap().len()
            );
            assert!(zipdeploy_report_total_ms(report) >= zipdeploy_report_fetch_ms(report));
            zipdeploy_report_free(report);
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"1");

            // The handle runs again: the same digest is a no-op.
            let mut again: *mut zipdeploy_report = std::ptr::null_mut();
            assert_eq!(
                zipdeploy_deploy_run(d, &mut again, std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            assert_eq!(zipdeploy_report_noop(again), 1);
            assert_eq!(zipdeploy_report_files(again), 0);
            zipdeploy_report_free(again);

            // A wrong digest fails with 40 and leaves the tree. (With the
            // installed digest expected it would be a no-op without a fetch.)
            let (pkg2, _) = package(tmp.path(), "2");
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg2.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            let wrong = Sha256Digest::of(b"another package").to_hex();
            assert_eq!(
                zipdeploy_deploy_set_sha256(d, cs(&wrong).as_ptr()),
                ZIPDEPLOY_OK
            );
            let mut error: *mut zipdeploy_error = std::ptr::null_mut();
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), &mut error),
                ZIPDEPLOY_DIGEST_MISMATCH
            );
            assert_eq!(zipdeploy_error_code(error), 40);
            assert_eq!(zipdeploy_error_class(error), 4);
            let message = text(zipdeploy_error_message(error));
            assert!(message.contains(&wrong), "{message}");
            assert_eq!(text(zipdeploy_deploy_last_error(d)), message);
            zipdeploy_error_free(error);
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"1");
            zipdeploy_deploy_free(d);
        }
    }

    /// Userdata of the test callback.
    struct Seen {
        deploy: *mut zipdeploy_deploy,
        events: Vec<zipdeploy_progress>,
        cancel_at: usize,
        reentry: Vec<c_int>,
    }

    unsafe extern "C" fn on_progress(userdata: *mut c_void, p: *const zipdeploy_progress) -> c_int {
        // SAFETY: the tests pass a `&mut Seen` that outlives the run, and the
        // library passes a valid event.
        let (seen, p) = unsafe { (&mut *userdata.cast::<Seen>(), *p) };
        seen.events.push(p);
        // Calls on the running handle are refused, not aliased.
        // SAFETY: the handle is live (it is running this callback).
        seen.reentry
            .push(unsafe { zipdeploy_deploy_set_retries(seen.deploy, 1) });
        c_int::from(seen.events.len() >= seen.cancel_at)
    }

    #[test]
    fn progress_callback_sees_stages_and_cancels_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg1, _) = package(tmp.path(), "1");
        let (pkg2, _) = package(tmp.path(), "2");
        let dest = tmp.path().join("app");
        // SAFETY: `d` is live until freed; `seen` outlives both runs.
        unsafe {
            let d = zipdeploy_deploy_new();
            let mut seen = Seen {
                deploy: d,
                events: Vec::new(),
                cancel_at: usize::MAX,
                reentry: Vec::new(),
            };
            let userdata = (&raw mut seen).cast::<c_void>();
            assert_eq!(
                zipdeploy_deploy_set_progress(d, Some(on_progress), userdata),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg1.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_dest(d, cs(dest.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            let stages: Vec<c_int> = seen.events.iter().map(|e| e.stage).collect();
            assert_eq!(stages.first(), Some(&(zipdeploy_stage::Fetch as c_int)));
            assert!(stages.contains(&(zipdeploy_stage::Extract as c_int)));
            assert_eq!(stages.last(), Some(&(zipdeploy_stage::Install as c_int)));
            assert!(
                seen.reentry.iter().all(|s| *s == ZIPDEPLOY_BUSY),
                "{:?}",
                seen.reentry
            );

            seen.events.clear();
            seen.cancel_at = 1;
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg2.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_CANCELLED
            );
            assert_eq!(seen.events.len(), 1);
            assert_eq!(text(zipdeploy_deploy_last_error(d)), "deploy cancelled");
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"1");

            // Removing the callback: the deploy goes through.
            assert_eq!(
                zipdeploy_deploy_set_progress(d, None, std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"2");
            zipdeploy_deploy_free(d);
        }
    }

    #[test]
    fn a_panic_becomes_a_status_and_the_handle_stays_usable() {
        // SAFETY: `d` is live until freed.
        unsafe {
            let d = zipdeploy_deploy_new();
            let status = set(d, |_| panic!("boom"));
            assert_eq!(status, ZIPDEPLOY_PANIC);
            assert_eq!(zipdeploy_status_class(status), 1);
            assert!(text(zipdeploy_deploy_last_error(d)).contains("boom"));
            assert_eq!(zipdeploy_deploy_set_retries(d, 2), ZIPDEPLOY_OK);
            zipdeploy_deploy_free(d);
        }
        assert_eq!(boundary(7, || panic!("outer")), 7);
    }
}
