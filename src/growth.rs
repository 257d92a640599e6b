//! A file that one thread writes while another reads it: the download
//! tells how far it got, and the streaming extractor waits for more. The
//! network and the extractor know this type, not each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// How far a download file has been written, shared with a reader that
/// extracts it while it grows (see `extract::stream`).
#[derive(Debug, Default)]
pub(crate) struct Growth {
    state: Mutex<GrowthState>,
    changed: Condvar,
    /// Whether the file ended abandoned, read without the lock by writers
    /// that check it between pieces.
    abandoned: AtomicBool,
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
    /// The smallest length a waiting reader waits for: `advance` wakes the
    /// readers only once it is reached. `u64::MAX` once they were woken and
    /// none waits again; 0 (wake at every advance) before anyone waited.
    wanted: u64,
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
        let mut state = self.lock();
        state.len = len;
        if len >= state.wanted {
            state.wanted = u64::MAX;
            drop(state);
            self.changed.notify_all();
        }
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
        let mut state = self.lock();
        if *state.end.get_or_insert(end) == GrowthEnd::Abandoned {
            self.abandoned.store(true, Ordering::Relaxed);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Abandons the file even if it was declared complete: the deploy is
    /// over (cancelled), and each reader fails at its next read.
    pub(crate) fn abandon(&self) {
        self.lock().end = Some(GrowthEnd::Abandoned);
        self.abandoned.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// Whether the file was abandoned: what was read from it is of no use,
    /// and writing it out can stop.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Returns the length at once when more than `pos` bytes exist;
    /// otherwise waits until `want` bytes (at least `pos + 1`) exist or the
    /// file ended, and returns the length then. `Err` if the download was
    /// abandoned.
    ///
    /// A reader that has caught up asks for more than the next byte (see
    /// `extract::stream`), so that it sleeps and wakes once per stretch of
    /// the download rather than once per network chunk.
    pub(crate) fn wait_for(&self, pos: u64, want: u64) -> std::result::Result<u64, GrowthEnd> {
        let want = want.max(pos + 1);
        let mut state = self.lock();
        let mut first = true;
        loop {
            match state.end {
                Some(GrowthEnd::Abandoned) => return Err(GrowthEnd::Abandoned),
                Some(GrowthEnd::Complete) => return Ok(state.len),
                None if state.len >= want || (first && state.len > pos) => return Ok(state.len),
                None => {
                    state.wanted = state.wanted.min(want);
                    state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                    first = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::{Scope, ScopedJoinHandle};
    use std::time::Duration;

    type Waited = std::result::Result<u64, GrowthEnd>;

    /// Lets a waiter that could wrongly return do so.
    fn settle() {
        std::thread::sleep(Duration::from_millis(50));
    }

    /// A reader waiting on its own thread for `want` bytes from `pos`.
    struct Waiter<'s> {
        thread: ScopedJoinHandle<'s, Waited>,
        returned: &'s AtomicBool,
    }

    impl<'s> Waiter<'s> {
        fn start<'e>(
            s: &'s Scope<'s, 'e>,
            growth: &'s Growth,
            returned: &'s AtomicBool,
            (pos, want): (u64, u64),
        ) -> Self {
            let thread = s.spawn(move || {
                let len = growth.wait_for(pos, want);
                returned.store(true, Ordering::SeqCst);
                len
            });
            Waiter { thread, returned }
        }

        fn waiting(&self) -> bool {
            !self.returned.load(Ordering::SeqCst)
        }

        fn join(self) -> Waited {
            self.thread.join().unwrap()
        }
    }

    #[test]
    fn a_reader_that_caught_up_sleeps_until_the_length_it_wants() {
        let growth = Growth::default();
        growth.advance(10);
        // Bytes beyond `pos` already there: no wait, whatever is wanted.
        assert_eq!(growth.wait_for(5, 1000), Ok(10));
        let returned = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = Waiter::start(s, &growth, &returned, (10, 100));
            settle();
            growth.advance(50);
            settle();
            assert!(waiter.waiting(), "woken short of what it wants");
            growth.advance(100);
            assert_eq!(waiter.join(), Ok(100));
        });
    }

    #[test]
    fn readers_waiting_for_different_lengths_each_wake_at_their_own() {
        let growth = Growth::default();
        let (near, far) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            let first = Waiter::start(s, &growth, &near, (0, 20));
            let second = Waiter::start(s, &growth, &far, (0, 200));
            settle();
            growth.advance(30);
            assert_eq!(first.join(), Ok(30));
            settle();
            assert!(second.waiting());
            growth.advance(150);
            settle();
            assert!(second.waiting());
            // The end wakes every reader, however much it wanted.
            growth.end(GrowthEnd::Complete);
            assert_eq!(second.join(), Ok(150));
        });
    }

    #[test]
    fn an_abandoned_download_wakes_its_readers_with_an_error() {
        let growth = Growth::default();
        let returned = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = Waiter::start(s, &growth, &returned, (0, 1 << 20));
            settle();
            growth.advance(10);
            growth.restarted();
            assert_eq!(waiter.join(), Err(GrowthEnd::Abandoned));
        });
        assert_eq!(growth.wait_for(100, 200), Err(GrowthEnd::Abandoned));
    }

    #[test]
    fn a_complete_download_abandoned_fails_its_readers() {
        let growth = Growth::default();
        growth.advance(100);
        growth.end(GrowthEnd::Complete);
        assert_eq!(growth.wait_for(10, 20), Ok(100));
        // An ordinary end changes nothing once complete; abandoning does.
        growth.end(GrowthEnd::Abandoned);
        assert_eq!(growth.wait_for(10, 20), Ok(100));
        assert!(!growth.is_abandoned());
        growth.abandon();
        assert_eq!(growth.wait_for(10, 20), Err(GrowthEnd::Abandoned));
        assert!(growth.is_abandoned());
    }
}
