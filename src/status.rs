//! What is installed at a destination ([`status()`]), and rolling back to a
//! kept release ([`rollback()`]).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::install::{Installed, Layout, Release};

/// What a destination holds, from its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Where the tree is (absolute): the destination, or `DEST/current`
    /// when DEST is a mount point (see [`Layout::new`]).
    pub dest: PathBuf,
    /// The package installed there, if zipdeploy installed what DEST holds.
    pub current: Option<Installed>,
    /// Previous trees kept for rollback, oldest first; the last is the one
    /// [`rollback`] brings back.
    pub kept: Vec<Release>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rollback {
    /// The record of the tree DEST held before (now the newest kept
    /// release), if there was one.
    pub previous: Option<Installed>,
    /// The destination as it is now.
    pub status: Status,
}

/// Reads what is installed at `dest`. Writes nothing and takes no lock: it
/// does not wait for a deploy in progress, and shows the state before or
/// after its activation (records are replaced atomically). Fails, as a
/// deploy would, when the state directory may not be trusted.
///
/// ```no_run
/// let status = zipdeploy::status("/var/www/app")?;
/// match &status.current {
///     Some(c) => println!("{} from {} ({} kept)", c.digest, c.source, status.kept.len()),
///     None => println!("nothing installed"),
/// }
/// zipdeploy::rollback("/var/www/app")?; // back to the previous release
/// # Ok::<(), zipdeploy::Error>(())
/// ```
pub fn status(dest: impl AsRef<Path>) -> Result<Status> {
    let layout = Layout::new(dest.as_ref())?;
    layout.check_state()?;
    Ok(status_of(&layout))
}

pub(crate) fn status_of(layout: &Layout) -> Status {
    Status {
        dest: layout.dest().to_path_buf(),
        current: layout.current(),
        kept: layout.releases(),
    }
}

/// Swaps the most recent kept release back into `dest`, atomically, under
/// the deploy lock (waiting for a deploy in progress); the tree it replaces
/// becomes the newest kept release, so rolling back twice returns to where
/// you were. Fails with [`crate::Error::NoRelease`] (code 72) when nothing is
/// kept; on any failure DEST is unchanged.
///
/// Like a deploy (see [`crate::Deploy::durable`]), it does not sync to disk:
/// after a power cut the previous state may be back. Use
/// [`rollback_durable`] for a rollback that survives one.
pub fn rollback(dest: impl AsRef<Path>) -> Result<Rollback> {
    rollback_with(dest.as_ref(), false, &mut || Ok(()))
}

/// [`rollback()`], with the records and directories synced to disk before
/// it returns, so that it survives a power cut (as
/// `Deploy::durable(true)`, `--sync`, `zipdeploy_deploy_set_durable`, Go's
/// `RollbackOptions.Sync` and Python's `sync=True`).
pub fn rollback_durable(dest: impl AsRef<Path>) -> Result<Rollback> {
    rollback_with(dest.as_ref(), true, &mut || Ok(()))
}

/// [`rollback()`] (or [`rollback_durable`], with `durable`) that can be
/// stopped: `waiting` is called about every 100 ms while a deploy holds the
/// lock, and its error (e.g. [`crate::Error::Cancelled`], on a stop signal)
/// abandons the rollback, DEST unchanged. The C ABI's
/// `zipdeploy_deploy_rollback` and the example CLI cancel through it.
pub fn rollback_with(
    dest: &Path,
    durable: bool,
    waiting: &mut dyn FnMut() -> Result<()>,
) -> Result<Rollback> {
    let layout = Layout::new(dest)?;
    let lock = layout.lock_waiting(waiting)?;
    layout.recover(&lock)?;
    let (previous, _) = layout.rollback(&lock, durable)?;
    Ok(Rollback {
        previous,
        status: status_of(&layout),
    })
}

/// A Unix time as RFC 3339 in UTC, e.g. `2024-05-01T12:00:00Z`. For the
/// example CLI's status output; not part of the documented API.
#[doc(hidden)]
pub fn rfc3339(secs: u64) -> String {
    let rem = secs % 86_400;
    let (year, month, day) = crate::civil::civil_from_days((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800 + 3661), "2024-05-01T13:01:01Z");
    }
}
