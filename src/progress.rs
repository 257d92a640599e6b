//! Progress reporting shared by the stages.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

/// The stage a [`Progress`] event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Stage {
    /// Downloading (or reading) the package and hashing it.
    Fetch = 1,
    /// Extracting entries into the staging directory.
    Extract = 2,
    /// Activating the staged tree.
    Install = 3,
}

/// A snapshot of how far a deploy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The stage reporting.
    pub stage: Stage,
    /// Bytes done in this stage (downloaded, or written by extraction).
    pub bytes: u64,
    /// Bytes expected in this stage, when known.
    pub total_bytes: Option<u64>,
    /// Entries extracted so far (extract stage).
    pub entries: u64,
    /// Entries in the archive (extract stage).
    pub total_entries: Option<u64>,
}

impl Progress {
    pub(crate) fn bytes(stage: Stage, bytes: u64, total_bytes: Option<u64>) -> Self {
        Progress {
            stage,
            bytes,
            total_bytes,
            entries: 0,
            total_entries: None,
        }
    }
}

/// How often a stage that waits, or writes a large file, tells where it
/// stands (see [`ProgressFn`]).
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(100);

/// A progress callback: return [`ControlFlow::Break`] to cancel the deploy.
///
/// It is called as bytes arrive and entries are extracted (every 100 ms
/// while a large file is written), and also as a heartbeat at least every
/// 100 ms while the network is waited for (connecting, a stalled server, a
/// backoff between retries) and while another deploy holds the lock of the
/// destination or of the cache entry: heartbeat events repeat the last
/// counts (all zero, [`Stage::Fetch`], before anything is fetched). So a
/// cancel takes effect within about 100 ms, whatever the server or the
/// other deploy does.
///
/// Cancelling is clean: the deploy fails with [`crate::Error::Cancelled`],
/// its work files are removed and the destination is left as it was. The
/// last event, [`Stage::Install`], comes once the tree is activated: the
/// deploy is done, and a `Break` returned to it is ignored.
pub type ProgressFn<'a> = dyn FnMut(&Progress) -> ControlFlow<()> + Send + 'a;

/// Calls the callback, if any, and turns a `Break` into [`crate::Error::Cancelled`].
pub(crate) fn report(progress: &mut Option<&mut ProgressFn<'_>>, p: Progress) -> crate::Result<()> {
    match progress {
        Some(f) => match f(&p) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(crate::Error::Cancelled),
        },
        None => Ok(()),
    }
}

/// Something a fetch did on the way that a user may want to see, as curl
/// shows under `-v`. Its `Display` is one line; URLs have their credentials
/// redacted and no header value appears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// An attempt failed with a transient error; the next starts after `delay`.
    Retry {
        /// The URL fetched.
        url: String,
        /// The attempt that failed (1 is the first).
        attempt: u32,
        /// The retries allowed ([`crate::FetchOptions::retries`]).
        retries: u32,
        /// The wait before the next attempt (backoff, or `Retry-After`).
        delay: Duration,
        /// Why the attempt failed.
        error: String,
    },
    /// A redirect is being followed.
    Redirect {
        /// The HTTP status of the redirect (301, 302, 303, 307, 308).
        status: u16,
        /// The URL that redirected.
        from: String,
        /// Where it points.
        to: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Retry {
                attempt,
                retries,
                delay,
                error,
                ..
            } => write!(
                f,
                "{error}; retry {attempt}/{retries} in {:.1} s",
                delay.as_secs_f64()
            ),
            Notice::Redirect { status, from, to } => {
                write!(f, "redirect {status} from {from} to {to}")
            }
        }
    }
}

/// A notice callback ([`crate::FetchOptions::on_notice`]). It may be called
/// from the fetching thread while a progress callback is also in use, and,
/// while a download is spread over several connections, from their helper
/// threads at the same time.
pub type NoticeFn = Arc<dyn Fn(&Notice) + Send + Sync>;

/// Calls the notice callback, if any (`notice` is built only then).
pub(crate) fn notify(hook: &Option<NoticeFn>, notice: impl FnOnce() -> Notice) {
    if let Some(hook) = hook {
        hook(&notice());
    }
}
