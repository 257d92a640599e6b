//! A file that one thread writes while another reads it: the download
//! tells how far it got, and the streaming extractor waits for more. The
//! network and the extractor know this type, not each other.

use std::sync::{Condvar, Mutex};

/// How far a download file has been written, shared with a reader that
/// extracts it while it grows (see `extract::stream`).
#[derive(Debug, Default)]
pub(crate) struct Growth {
    state: Mutex<GrowthState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GrowthState {
    len: u64,
    /// The length the server announced, when it did.
    total: Option<u64>,
    /// Whether the disk space of the rest is already reserved.
    reserved: bool,
    /// Set once no more bytes will come.
    end: Option<GrowthEnd>,
}

/// Why a download file stopped growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrowthEnd {
    /// All bytes are there (and their digest matched).
    Complete,
    /// The bytes already read are not to be trusted or used: the download
    /// failed, restarted from zero, or the deploy is over.
    Abandoned,
}

impl Growth {
    fn lock(&self) -> std::sync::MutexGuard<'_, GrowthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn advance(&self, len: u64) {
        self.lock().len = len;
        self.changed.notify_all();
    }

    pub(crate) fn restarted(&self) {
        self.end(GrowthEnd::Abandoned);
    }

    pub(crate) fn expect(&self, total: Option<u64>) {
        self.lock().total = total;
    }

    /// The disk space of the rest of the download is reserved (see
    /// [`crate::prealloc`]): it is no longer counted as still needed.
    pub(crate) fn reserved(&self) {
        self.lock().reserved = true;
    }

    /// Disk space the download still needs for the bytes it has to write,
    /// when its length is known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        let state = self.lock();
        match state.reserved {
            true => Some(0),
            false => state.total.map(|t| t.saturating_sub(state.len)),
        }
    }

    /// Declares the end of the file (the first end declared wins).
    pub(crate) fn end(&self, end: GrowthEnd) {
        self.lock().end.get_or_insert(end);
        self.changed.notify_all();
    }

    /// Waits until more than `pos` bytes exist or the file ended; returns the
    /// length then, or `Err` if the download was abandoned.
    pub(crate) fn wait_beyond(&self, pos: u64) -> std::result::Result<u64, GrowthEnd> {
        let mut state = self.lock();
        loop {
            match state.end {
                Some(GrowthEnd::Abandoned) => return Err(GrowthEnd::Abandoned),
                Some(GrowthEnd::Complete) => return Ok(state.len),
                None if state.len > pos => return Ok(state.len),
                None => {
                    state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}
