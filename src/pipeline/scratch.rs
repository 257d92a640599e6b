//! What one deploy leaves in the state directory that must go when it ends,
//! whatever the outcome.

use std::path::PathBuf;

use crate::install::{self, StateLock};

/// The paths a deploy works in (its staging tree, downloads not kept), and
/// whether its partial download is of no more use; all removed when it is
/// dropped, while the state lock is still held.
pub(super) struct Scratch<'l> {
    lock: &'l StateLock,
    paths: Vec<PathBuf>,
    partial_done: bool,
}

impl<'l> Scratch<'l> {
    pub(super) fn new(lock: &'l StateLock) -> Scratch<'l> {
        Scratch {
            lock,
            paths: Vec::new(),
            partial_done: false,
        }
    }

    /// Removes `path` (a file or a tree) when the deploy ends.
    pub(super) fn remove_at_end(&mut self, path: PathBuf) {
        self.paths.push(path);
    }

    /// Whether the partial download (`partial.zip`) is removed when the
    /// deploy ends (complete, or failed for good) or kept for the next run
    /// to resume (cut short).
    pub(super) fn partial_done(&mut self, done: bool) {
        self.partial_done = done;
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = install::remove_tree(path);
        }
        if self.partial_done {
            self.lock.remove_partial();
        }
    }
}
