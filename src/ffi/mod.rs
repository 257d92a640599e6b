//! zipdeploy: fetch a ZIP package over HTTP(S) or from a local path, verify
//! its SHA-256, extract it with every entry checked, and install it
//! atomically into a directory. This is the C ABI of the Rust library.
//!
//! Conventions (the model is rustls-ffi)
//!
//! - Names and objects. Every symbol is `zipdeploy_<noun>_<verb>`. The objects
//!   are opaque: zipdeploy_deploy (a configuration, run as often as wanted),
//!   zipdeploy_report (what a run did), zipdeploy_status (what a destination
//!   holds) and zipdeploy_error (a failed call's code and message). Whoever
//!   receives one, from zipdeploy_deploy_new or through an out-pointer,
//!   owns it and releases it with its `_free`, once; `_free(NULL)` does
//!   nothing. Using or freeing an object after its `_free` (a double free),
//!   or passing one object where another type is expected, is undefined
//!   behaviour the library cannot detect: set the pointer to NULL after.
//! - Result codes. Fallible functions return an int result code: ZIPDEPLOY_OK
//!   (0) or one of the ZIPDEPLOY_* codes below, whose numbers are stable.
//!   `code / 10` is its class (zipdeploy_code_class): 1 internal, 2 usage,
//!   3 network, 4 digest, 5 archive, 6 limit, 7 filesystem, 8 hook,
//!   9 cancelled -- the example CLI's exit status. zipdeploy_code_str names a
//!   code. ("Status" always means the zipdeploy_status object; the older
//!   names zipdeploy_status_class, zipdeploy_status_str and
//!   zipdeploy_deploy_last_status remain as deprecated aliases.)
//! - Outputs are written only on success; initialise out-pointers to NULL.
//!   Error detail is never thread-local (Go moves goroutines between OS
//!   threads between two cgo calls): a failed run, rollback or status read
//!   hands out an owned zipdeploy_error, and a deploy handle keeps the code
//!   and message of its last call (zipdeploy_deploy_last_code,
//!   zipdeploy_deploy_last_error).
//! - Strings are NUL-terminated UTF-8, in and out. Strings passed in are
//!   copied. Strings returned as `const char *` are borrowed and never NULL:
//!   static (zipdeploy_version, zipdeploy_code_str), or valid until the
//!   object they come from is freed (each getter says which). Nothing
//!   returned is released with `free()`.
//! - A NULL argument gives ZIPDEPLOY_INVALID_ARGUMENT (getters return 0 or
//!   `""`); it never crashes. A panic inside the library is caught at the
//!   boundary and returned as ZIPDEPLOY_PANIC.
//! - Threading. Reports, statuses and errors are immutable and may be read
//!   from any thread. A deploy handle may be used from any thread, one call
//!   at a time: a call made while another call on it is running (from another
//!   thread, or from its own progress callback) returns ZIPDEPLOY_BUSY.
//! - Progress and cancel. The progress callback, `int (*)(void *userdata,
//!   const zipdeploy_progress *)`, runs only on the thread that called
//!   zipdeploy_deploy_run (or zipdeploy_deploy_rollback): after each chunk
//!   downloaded, as extraction advances, and at least every 100 ms while the
//!   network or another deploy's lock is waited for (such heartbeats repeat
//!   the last counts). A non-zero return cancels within about 100 ms, even on
//!   a stalled connection: ZIPDEPLOY_CANCELLED, the destination untouched,
//!   work files removed. The last event (stage install) comes once the tree
//!   is activated; its return is ignored.

// The text above is the one copy of the C conventions: build.rs makes it the
// header's top comment (so it is plain text, no rustdoc links), and the
// README points to the header.
//
// For Rust readers: the C ABI over `crate::Deploy`, one file per object as in
// rustls-ffi: `deploy.rs` (the handle: new, setters, run, rollback, free),
// `progress.rs` (the callback and its events), `report.rs`, `status.rs` (the
// installed-status object) and `error.rs` (the owned error, the result codes
// from `code_table.rs`, and the code helpers). This file holds what they
// share: the panic boundary and the generic helpers that borrow, hand out and
// free objects and read C strings.
//
// Every `pub unsafe extern "C"` function has the same safety contract: each
// pointer argument is NULL or valid for what its documentation says (an
// object from the matching constructor that has not been freed, a
// NUL-terminated string, a writable out-pointer). The `unsafe` blocks rely on
// exactly that and nothing more.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use std::ffi::{c_char, CStr, CString};
use std::panic::{self, AssertUnwindSafe};

// The header lists this file's functions first, then each module's in the
// order they are declared here (cbindgen reads them in turn): the deploy
// handle from new through setters and run to free, then the report, the
// status and the error, each from its getters to its free. Blank lines
// keep rustfmt from sorting them.
mod deploy;

mod progress;

mod report;

mod status;

mod error;

pub use deploy::*;
pub use error::*;
pub use progress::{zipdeploy_progress, zipdeploy_progress_callback, zipdeploy_stage};
pub use report::*;
pub use status::*;

use error::Failure;

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

/// A type whose values C holds as pointers made by [`hand_out`] (a leaked
/// `Box`): only such types are borrowed ([`read`]) and freed ([`free`]) by
/// the helpers below, so a pointer of another origin cannot reach them.
trait Object: Sized {}

/// Runs `f`, turning a panic into `on_panic`: no panic crosses the boundary.
fn boundary<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
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

/// Gives a new object to C, which owns the pointer until its `_free`.
fn hand_out<T: Object>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Stores a new object in the out-pointer `out`, unless `out` is NULL (the
/// caller did not want it; it is then dropped).
///
/// # Safety
/// `out` is NULL or a writable `T *` slot.
unsafe fn put<T: Object>(out: *mut *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, and the caller promises a writable slot.
        unsafe { out.write(hand_out(value)) };
    }
}

/// Reads from the object behind `ptr`: `f` of it, or `default` when `ptr`
/// is NULL or `f` panics. The objects are immutable once handed out (the
/// deploy handle's changing state is behind its mutex), so any thread may
/// read them.
///
/// # Safety
/// `ptr` is NULL or a live object from [`hand_out`].
unsafe fn read<T: Object, R: Copy>(ptr: *const T, default: R, f: impl FnOnce(&T) -> R) -> R {
    boundary(default, || {
        // SAFETY: the caller promises NULL or a live object; only shared
        // references to it are ever made.
        match unsafe { ptr.as_ref() } {
            Some(object) => f(object),
            None => default,
        }
    })
}

/// Releases an object handed out by [`hand_out`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a live object from [`hand_out`] that the caller gives
/// up: no other call on it is running or will be made.
unsafe fn free<T: Object>(ptr: *mut T) {
    boundary((), || {
        if !ptr.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `hand_out`
            // (`T: Object`) and the caller gives up ownership here.
            drop(unsafe { Box::from_raw(ptr) });
        }
    })
}

/// A string argument from C.
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

/// An optional string argument from C: NULL is `None` (it clears a setting).
///
/// # Safety
/// As for [`str_arg`].
unsafe fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(ptr, what) }.map(Some)
}

/// The empty string getters return for NULL or a missing value.
const EMPTY: *const c_char = c"".as_ptr();

/// String `index` of a list, for C to borrow; `""` when out of range.
fn str_at(list: &[CString], index: u64) -> *const c_char {
    usize::try_from(index)
        .ok()
        .and_then(|i| list.get(i))
        .map_or(EMPTY, |s| s.as_ptr())
}

/// A C string from Rust text, for C to borrow; NUL bytes (never expected)
/// become `\0`.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests;
