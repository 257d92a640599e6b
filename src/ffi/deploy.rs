//! The deploy handle, `zipdeploy_deploy`: created with `_new`, configured
//! with the setters, run (and rolled back) as often as wanted, released with
//! `_free`. Its configuration and last outcome are the `State` behind its
//! mutex.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use super::error::Failure;
use super::progress::{zipdeploy_progress_callback, Callback};
use super::{
    boundary, c_string, free, hand_out, opt_str_arg, panic_message, put, read, str_arg, Object,
    ZIPDEPLOY_BUSY, ZIPDEPLOY_CONFIG, ZIPDEPLOY_INVALID_ARGUMENT, ZIPDEPLOY_OK, ZIPDEPLOY_PANIC,
};
use super::{zipdeploy_error, zipdeploy_report, zipdeploy_status};
use crate::signature::PublicKey;
use crate::{Deploy, DeployOptions, Progress, Report, Source, Stage, Status};

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

impl Object for zipdeploy_deploy {}

/// What a handle remembers: the configuration and the last call's outcome.
struct State {
    source: Option<Source>,
    dest: Option<PathBuf>,
    /// Every other setting: the one options value Rust, C and the CLI fill.
    options: DeployOptions,
    progress: Option<Callback>,
    last_status: c_int,
    last_error: CString,
}

impl Default for State {
    fn default() -> Self {
        State {
            source: None,
            dest: None,
            options: DeployOptions::default(),
            progress: None,
            last_status: ZIPDEPLOY_OK,
            last_error: CString::default(),
        }
    }
}

/// Runs `f` on the state of `deploy` and records its outcome there.
///
/// Returns the outcome; a failure's code and message are also kept on the
/// handle (`zipdeploy_deploy_last_code`, `_last_error`).
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
            state.last_status = failure.code;
            state.last_error = c_string(&failure.message);
        }
    }
    result
}

/// [`with_state`] for a setter: just the result code.
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
            Err(failure) => failure.code,
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
        let mut deploy = Deploy::with_options(source, self.options.clone())?;
        if let Some(dest) = &self.dest {
            deploy = deploy.dest(dest);
        }
        if let Some(callback) = self.progress {
            deploy = deploy.progress(callback.on_this_thread());
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
        let mut progress = self.progress.map(Callback::on_this_thread);
        let mut waiting = || match progress.as_mut() {
            Some(progress) => match progress(&Progress::bytes(Stage::Install, 0, None)) {
                ControlFlow::Break(()) => Err(crate::Error::Cancelled),
                ControlFlow::Continue(()) => Ok(()),
            },
            None => Ok(()),
        };
        let durable = self.options.durable;
        Ok(crate::status::rollback_with(dest, durable, &mut waiting)?.status)
    }
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
        hand_out(zipdeploy_deploy {
            state: Mutex::new(State::default()),
        })
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
            s.options.sha256 = match opt_str_arg(sha256, "sha256")? {
                Some(hex) => Some(hex.parse()?),
                None => None,
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
            s.options.fetch.max_size = positive(bytes, "max_download")?;
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
            s.options.limits.max_total_size = positive(bytes, "max_total_size")?;
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
            s.options.limits.max_entries = positive(entries, "max_entries")?;
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
            s.options.limits.max_path_depth = positive(components, "max_path_depth")?;
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
            s.options.limits.max_path_length = positive(bytes, "max_path_length")?;
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
            s.options.limits.max_metadata = positive(bytes, "max_metadata")?;
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
            s.options.fetch.timeout = (ms > 0).then(|| Duration::from_millis(ms));
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
            s.options.fetch.connect_timeout =
                Duration::from_millis(positive(ms, "connect_timeout_ms")?);
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
            s.options.fetch.stall_timeout =
                Duration::from_millis(positive(ms, "stall_timeout_ms")?);
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
            s.options.fetch.speed_limit = bytes_per_second;
            s.options.fetch.speed_time = Duration::from_millis(time_ms);
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
            s.options.fetch.retries = retries;
            Ok(())
        })
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
            s.options.fetch.connections = connections;
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
            s.options.fetch.headers.push((name, value));
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
            s.options.fetch.origin_headers.push((origin, name, value));
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
    // The same check as `DeployOptions::validate`, reported at once.
    crate::options::check_header(name, value)
        .map_err(|why| Failure::new(ZIPDEPLOY_INVALID_ARGUMENT, why))?;
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
            s.options.fetch.headers.clear();
            s.options.fetch.origin_headers.clear();
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
            s.options.fetch.root_certs_pem.push(pem);
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
            s.options.fetch.root_certs_pem.clear();
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
            s.options.fetch.netrc = match opt_str_arg(path, "netrc file")? {
                Some(path) => crate::netrc::NetrcFile::Required(PathBuf::from(path)),
                None => crate::netrc::NetrcFile::Disabled,
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
            s.options.keep = usize::try_from(releases).unwrap_or(usize::MAX);
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
            s.options.durable = durable != 0;
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
            s.options.fetch.s3.endpoint = match opt_str_arg(endpoint, "s3 endpoint")? {
                Some(endpoint) => Some(crate::s3::parse_endpoint(endpoint)?),
                None => None,
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
            s.options.fetch.s3.path_style = path_style != 0;
            Ok(())
        })
    }
}

/// Sets the progress callback and its `userdata` (passed back unchanged as
/// the callback's first argument); a NULL callback removes it.
///
/// The callback runs only on the thread that calls `zipdeploy_deploy_run`
/// (never on a thread of the library's own), after
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
            s.options.sha256_from = match opt_str_arg(url, "sha256_from")? {
                Some(url) => Some(Source::parse(url)?),
                None => None,
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
            s.options
                .mirrors
                .push(Source::parse(str_arg(url, "mirror")?)?);
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
            s.options.mirrors.clear();
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
            s.options.minisign_key = match opt_str_arg(key, "minisign key")? {
                Some(key) => Some(PublicKey::from_arg(key)?),
                None => None,
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
            s.options.minisign_signature = match opt_str_arg(location, "minisign signature")? {
                Some(location) => Some(Source::parse(location)?),
                None => None,
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
            s.options.cache = match opt_str_arg(dir, "cache")? {
                Some("") => {
                    return Err(Failure::new(
                        ZIPDEPLOY_CONFIG,
                        "invalid configuration: empty cache directory",
                    ))
                }
                Some(dir) => Some(PathBuf::from(dir)),
                None => None,
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
            s.options.cache_max_size = positive(bytes, "cache_max_size")?;
            Ok(())
        })
    }
}

/// Fetches, verifies, extracts and installs the package. Blocks until done.
///
/// On success returns `ZIPDEPLOY_OK` and, if `report_out` is not NULL, stores
/// a new report there that the caller owns and releases with
/// `zipdeploy_report_free`. On failure returns the result code, stores (if
/// `error_out` is not NULL) a new error that the caller owns and releases
/// with `zipdeploy_error_free`, and leaves the destination exactly as it
/// was; the code and message are also kept on the handle
/// (`zipdeploy_deploy_last_error`). Each out-pointer is written only in its
/// case, so initialise both to NULL.
///
/// Returns `ZIPDEPLOY_CONFIG` if no URL or destination is set,
/// `ZIPDEPLOY_INVALID_ARGUMENT` if `deploy` is NULL, `ZIPDEPLOY_BUSY` if the
/// handle is running already, otherwise the result code of the deploy.
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
                // SAFETY: forwarded contract: NULL or a writable slot.
                unsafe { put(report_out, zipdeploy_report::new(report)) };
                ZIPDEPLOY_OK
            }
            // SAFETY: forwarded contract: NULL or a writable slot.
            Err(failure) => unsafe { failure.put(error_out) },
        }
    })
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
/// stores a new `zipdeploy_status` of the destination (as after the rollback) that the
/// caller releases with `zipdeploy_status_free`. On failure returns the
/// result code (`ZIPDEPLOY_NO_RELEASE` when nothing is kept, `ZIPDEPLOY_CONFIG`
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
                unsafe { put(status_out, zipdeploy_status::new(status)) };
                ZIPDEPLOY_OK
            }
            // SAFETY: forwarded contract: NULL or a writable slot.
            Err(failure) => unsafe { failure.put(error_out) },
        }
    })
}

/// The result code of the last call on this handle that returns one
/// (`ZIPDEPLOY_OK` after a success), or `ZIPDEPLOY_INVALID_ARGUMENT` if
/// `deploy` is NULL, `ZIPDEPLOY_BUSY` while a call on it is running.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_last_code(deploy: *const zipdeploy_deploy) -> c_int {
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
/// handle other than `zipdeploy_deploy_last_code`/`_last_error`, or
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
/// Deprecated: the old name of `zipdeploy_deploy_last_code` (kept so that
/// existing programs still link). Same result.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_last_status(deploy: *const zipdeploy_deploy) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { zipdeploy_deploy_last_code(deploy) }
}

/// Releases a deploy handle. NULL is a no-op.
///
/// Pointers returned by `zipdeploy_deploy_last_error` for this handle become
/// invalid; reports, statuses and errors it handed out stay valid (they are
/// owned separately). Calling this while a call on the handle is running
/// (for example from its progress callback) is a bug; the handle is then
/// leaked rather than freed under the running call.
#[no_mangle]
pub unsafe extern "C" fn zipdeploy_deploy_free(deploy: *mut zipdeploy_deploy) {
    // SAFETY: forwarded contract: NULL or a live handle.
    let busy = unsafe {
        read(deploy, false, |handle| {
            matches!(handle.state.try_lock(), Err(TryLockError::WouldBlock))
        })
    };
    if !busy {
        // SAFETY: forwarded contract: NULL or a handle the caller gives up;
        // no call on it is running (checked above).
        unsafe { free(deploy) }
    }
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{cs, package, text};
    use super::*;
    use crate::ffi::*;
    use crate::Sha256Digest;

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
                let endpoint = state.options.fetch.s3.endpoint.as_ref().map(|u| u.as_str());
                assert_eq!(endpoint, Some("http://127.0.0.1:9000/"));
                assert!(state.options.fetch.s3.path_style);
            }
            assert_eq!(
                zipdeploy_deploy_set_s3_endpoint(d, std::ptr::null()),
                ZIPDEPLOY_OK
            );
            assert!((*d)
                .state
                .lock()
                .unwrap()
                .options
                .fetch
                .s3
                .endpoint
                .is_none());
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
