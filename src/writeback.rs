//! Writeback started while extraction goes on, so that a durable deploy's
//! final flush (one `syncfs` before activation, see
//! [`Layout::activate`](crate::install::Layout::activate)) has little left
//! to write. Nothing here is a guarantee: the final `syncfs` is, and it
//! waits for everything started here. This only moves the disk writes
//! earlier, beside the CPU work of inflating. (The deploy's own download is
//! not written at all: it is truncated before the final flush.)
//!
//! Two kinds of files, two ways (measured on the benchmark's loop-mounted
//! journaled ext4, 2 cores):
//!
//! - A large file (at least [`LARGE`]) is handed to the background thread
//!   every [`STEP`] bytes and at its end, which starts the writeback of that
//!   range with `posix_fadvise(POSIX_FADV_DONTNEED)`: on Linux that starts
//!   asynchronous writeback of the range's dirty pages (what dpkg does with
//!   `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which rustix lacks), and
//!   drops only pages that are already clean. The extracting threads never
//!   make these calls: on the benchmark's assets package they blocked them
//!   for about 0.3 s in all. Once [`FLUSH_BYTES`] of large files are
//!   complete, the thread also waits for the last one with `fdatasync`:
//!   that commits the journal and flushes the device, so data that only
//!   reached a cache on the way (a loop device's backing file, a VM disk
//!   cached by its host) is written out while extraction goes on, not all
//!   in the final flush (assets: 90–140 ms left in the final `syncfs`
//!   before, a few ms after). Unlike a `syncfs`, `fdatasync` does not write
//!   the download, which is still growing or about to be truncated.
//! - Small files are left to the kernel in batches: starting the writeback
//!   of each one cost more than the whole final flush (php-app, 20,000
//!   files: about +1 s of extraction to save 0.5 s of flush on the
//!   extracting threads; still +0.2 s of CPU from the background thread,
//!   because each file becomes its own write). Once [`BATCH_FILES`] small
//!   files or [`BATCH_BYTES`] of them are written, the background thread
//!   calls `syncfs`, which writes them all in one pass while the extraction
//!   threads go on.
//!
//! Why `syncfs`, and not an `fsync` per file: on ext4 each `fsync` commits
//! the journal or flushes the device cache; a tree of 20,000 files took
//! about 40 s to `fsync` file by file (15 to 19 s with writeback started
//! first), against under 1 s for one `syncfs`. Its cost on a shared host:
//! `syncfs` writes every dirty page of the filesystem, other programs' too,
//! so a deploy onto a filesystem that others are busy writing also waits
//! for their data (written sooner, not twice), and a background `syncfs`
//! also writes the part of the download that has arrived (php-app: about
//! 60 MiB written beyond the tree's 233). zipdeploy paid the first price
//! already with its one final `syncfs`; the background ones are only issued
//! for trees of many small files, one at a time.
//!
//! What is left on a 2-core machine is the CPU of writing itself (ext4
//! writeback, the loop device's copy): about 0.37 s for php-app's tree and
//! 0.18 s for assets', measured as the kernel threads' CPU of `cp -a` +
//! `sync`. A deploy that keeps both cores busy pays about half of it in
//! wall time, wherever the writes are started.

use std::collections::VecDeque;
use std::fs::File;
use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Files at least this large have their own writeback started.
pub(crate) const LARGE: u64 = 1 << 20;

/// A large file's writeback is started every this many bytes.
pub(crate) const STEP: u64 = 8 << 20;

/// Bytes of complete large files after which the background thread waits
/// for the last one to be on disk (`fdatasync`).
pub(crate) const FLUSH_BYTES: u64 = 16 << 20;

/// Ranges waiting for the background thread, at most: each holds a file
/// descriptor. One more (the thread is far behind the disk) is left to the
/// kernel's own writeback and the final flush.
pub(crate) const MAX_QUEUED: usize = 64;

/// Small files written before a background `syncfs`.
pub(crate) const BATCH_FILES: u64 = 1_000;

/// Bytes of small files written before a background `syncfs`.
pub(crate) const BATCH_BYTES: u64 = 8 << 20;

/// Starts writeback of what one durable deploy extracts. Cheap to clone:
/// every extraction thread holds one.
#[derive(Debug, Clone)]
pub(crate) struct Writeback {
    handle: Arc<Handle>,
}

/// Shared by the clones of one [`Writeback`]; dropping it ends the
/// background thread, which holds [`Shared`] but not this.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// What the background thread has to do, and whether the deploy is over.
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Ranges of large files whose writeback was started.
    ranges_started: AtomicU64,
    /// Large files waited for (`fdatasync`).
    data_syncs: AtomicU64,
    /// Background `syncfs` calls made.
    background_flushes: AtomicU64,
    /// Tests hold the background thread here.
    #[cfg(test)]
    gate: tests::Gate,
}

#[derive(Debug, Default)]
struct Pending {
    /// Ranges of large files, in the order they were written.
    ranges: VecDeque<Range>,
    /// Small files and their bytes written since the last `syncfs`.
    files: u64,
    bytes: u64,
    done: bool,
}

/// A range of a large file whose writeback is to be started.
#[derive(Debug)]
struct Range {
    /// A handle of its own (the extractor closes its one when done).
    file: File,
    offset: u64,
    /// `None`: to the end; the file is then complete, `complete` bytes.
    len: Option<NonZeroU64>,
    complete: u64,
}

impl Pending {
    fn batch_full(&self) -> bool {
        self.files >= BATCH_FILES || self.bytes >= BATCH_BYTES
    }
}

impl Writeback {
    /// Writeback for files on the filesystem of `fs` (any open file or
    /// directory on it: the background `syncfs` flushes that filesystem).
    /// If the background thread cannot start, everything is left to the
    /// final flush.
    pub(crate) fn new(fs: OwnedFd) -> Self {
        let shared = Arc::new(Shared::default());
        let flusher = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("zipdeploy-writeback".into())
            .spawn(move || background(&flusher, &fs));
        if spawned.is_err() {
            // Nothing is queued then.
            shared.lock().done = true;
        }
        Writeback {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Call after writing `n` more bytes to `file`, `total` in all: hands
    /// each [`STEP`] completed to the background thread.
    pub(crate) fn wrote(&self, file: &File, total: u64, n: u64) {
        let (before, now) = ((total - n) / STEP, total / STEP);
        if now > before {
            let len = NonZeroU64::new((now - before) * STEP);
            self.queue(file, before * STEP, len, 0);
        }
    }

    /// Call once `file` is complete, `len` bytes.
    pub(crate) fn finished(&self, file: &File, len: u64) {
        if len >= LARGE {
            // What the steps have not covered.
            self.queue(file, len / STEP * STEP, None, len);
            return;
        }
        let shared = &self.handle.shared;
        let mut pending = shared.lock();
        pending.files += 1;
        pending.bytes += len;
        if pending.batch_full() {
            shared.wake.notify_one();
        }
    }

    /// Hands a range of a large file to the background thread (a `dup` of
    /// its descriptor: no waiting on the extracting thread).
    fn queue(&self, file: &File, offset: u64, len: Option<NonZeroU64>, complete: u64) {
        let shared = &self.handle.shared;
        let mut pending = shared.lock();
        if pending.done || pending.ranges.len() >= MAX_QUEUED {
            return;
        }
        // On error the final flush writes the pages anyway.
        let Ok(file) = file.try_clone() else { return };
        pending.ranges.push_back(Range {
            file,
            offset,
            len,
            complete,
        });
        shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the writeback of `range`, without waiting for it.
    fn start(&self, range: &Range) {
        #[cfg(test)]
        self.gate.pass();
        // Advice only: on error the final flush writes the pages anyway.
        let advice = rustix::fs::Advice::DontNeed;
        let _ = rustix::fs::fadvise(&range.file, range.offset, range.len, advice);
        self.ranges_started.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits for `file`'s data to be on disk.
    fn sync_data(&self, file: &File) {
        let _ = rustix::fs::fdatasync(file);
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The deploy is over: the background thread ends (after the call
        // it may be in; nobody waits for it), and what is queued is dropped.
        self.shared.lock().done = true;
        self.shared.wake.notify_one();
    }
}

/// The background thread, until the deploy's [`Writeback`] is dropped:
/// starts the writeback of each range of a large file handed to it (and
/// waits for every [`FLUSH_BYTES`] of complete ones), and makes one
/// `syncfs` of `fs` each time a batch of small files is pending.
fn background(shared: &Shared, fs: &OwnedFd) {
    let mut unsynced = 0u64;
    loop {
        let range = {
            let mut pending = shared.lock();
            while pending.ranges.is_empty() && !pending.batch_full() && !pending.done {
                pending = shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if pending.done {
                return;
            }
            let range = pending.ranges.pop_front();
            if range.is_none() {
                (pending.files, pending.bytes) = (0, 0);
            }
            range
        };
        let Some(range) = range else {
            let _ = rustix::fs::syncfs(fs);
            shared.background_flushes.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        shared.start(&range);
        unsynced += range.complete;
        if unsynced >= FLUSH_BYTES {
            shared.sync_data(&range.file);
            unsynced = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::stream::{Finished, Streamer};
    use crate::extract::{extract_open_archive, Limits};
    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Holds the background thread before it starts a writeback, while
    /// closed (at most 20 s a call, so a broken test cannot hang).
    #[derive(Debug, Default)]
    pub(super) struct Gate {
        closed: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        pub(super) fn pass(&self) {
            let until = Instant::now() + Duration::from_secs(20);
            let mut closed = self.closed.lock().unwrap();
            while *closed && Instant::now() < until {
                let wait = self.opened.wait_timeout(closed, Duration::from_millis(50));
                closed = wait.unwrap().0;
            }
        }

        fn close(&self) {
            *self.closed.lock().unwrap() = true;
        }

        fn open(&self) {
            *self.closed.lock().unwrap() = false;
            self.opened.notify_all();
        }
    }

    impl Writeback {
        fn ranges_started(&self) -> u64 {
            self.handle.shared.ranges_started.load(Ordering::Relaxed)
        }

        fn data_syncs(&self) -> u64 {
            self.handle.shared.data_syncs.load(Ordering::Relaxed)
        }

        fn background_flushes(&self) -> u64 {
            let flushes = &self.handle.shared.background_flushes;
            flushes.load(Ordering::Relaxed)
        }
    }

    /// Waits (at most 30 s) for `count` to reach `n`; returns its value.
    fn reaches(count: impl Fn() -> u64, n: u64) -> u64 {
        let start = Instant::now();
        while count() < n && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        count()
    }

    /// A package of one large file (20 MiB: two whole steps and a tail) and
    /// `small` small files.
    fn package(dir: &Path, small: usize) -> File {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(false);
        w.start_file("big.bin", stored).unwrap();
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..20 {
            w.write_all(&block).unwrap();
        }
        for i in 0..small {
            w.start_file(format!("s/{i}.txt"), stored).unwrap();
            w.write_all(format!("file {i}\n").as_bytes()).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        let path = dir.join("app.zip");
        std::fs::write(&path, bytes).unwrap();
        File::open(&path).unwrap()
    }

    fn writeback(dir: &Path) -> Writeback {
        Writeback::new(File::open(dir).unwrap().into())
    }

    /// Waits (at most 30 s) for the background flushes to reach `n`.
    fn background_flushes_reach(w: &Writeback, n: u64) -> u64 {
        reaches(|| w.background_flushes(), n)
    }

    #[test]
    fn extraction_starts_writeback_of_large_files_by_steps_and_flushes_small_ones_in_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 2_500);
        let w = writeback(tmp.path());
        let dest = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        let done =
            extract_open_archive(&archive, &shown, &dest, &Limits::default(), None, Some(&w))
                .unwrap();
        assert_eq!(done.files, 2_501);
        // 0-8 MiB and 8-16 MiB as they are written, 16-20 MiB at the end;
        // then the 20 MiB complete are waited for.
        assert_eq!(reaches(|| w.ranges_started(), 3), 3);
        assert_eq!(reaches(|| w.data_syncs(), 1), 1);
        // 2,500 small files: a batch at 1,000 and one at 2,000 (the second
        // may find the first still running and be taken with it).
        let flushes = background_flushes_reach(&w, 1);
        assert!((1..=2).contains(&flushes), "{flushes} background flushes");
        assert_eq!(
            std::fs::read(dest.join("s/2499.txt")).unwrap(),
            b"file 2499\n"
        );
        assert_eq!(
            std::fs::metadata(dest.join("big.bin")).unwrap().len(),
            20 << 20
        );
    }

    #[test]
    fn streaming_starts_writeback_the_same_way() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 1_200);
        let w = writeback(tmp.path());
        let staging = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        let limits = Limits::default();
        let streamer = Streamer::start(&archive, &staging, &limits, Some(w.clone())).unwrap();
        streamer.growth().advance(archive.metadata().unwrap().len());
        let done = match streamer
            .finish(&archive, &shown, &staging, &limits, &mut |_| Ok(()))
            .unwrap()
        {
            Finished::Extracted(done) => done,
            Finished::SteppedAside(why) => panic!("stepped aside: {why}"),
        };
        assert_eq!(done.files, 1_201);
        assert_eq!(reaches(|| w.ranges_started(), 3), 3);
        assert_eq!(reaches(|| w.data_syncs(), 1), 1);
        assert_eq!(background_flushes_reach(&w, 1), 1);
    }

    #[test]
    fn a_few_small_files_are_left_to_the_final_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 50);
        let w = writeback(tmp.path());
        let dest = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        extract_open_archive(&archive, &shown, &dest, &Limits::default(), None, Some(&w)).unwrap();
        assert_eq!(reaches(|| w.ranges_started(), 3), 3);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.background_flushes(), 0);
    }

    #[test]
    fn extracting_threads_never_wait_for_the_writeback_of_large_files() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 50);
        let w = writeback(tmp.path());
        let gate = &w.handle.shared.gate;
        gate.close();
        let dest = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        let started = Instant::now();
        extract_open_archive(&archive, &shown, &dest, &Limits::default(), None, Some(&w)).unwrap();
        // Starting a writeback on an extracting thread would have waited
        // 20 s at the gate, three times.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "extraction took {took:?}");
        assert_eq!(w.ranges_started(), 0, "no writeback passed the gate");
        gate.open();
        assert_eq!(reaches(|| w.ranges_started(), 3), 3);
        assert_eq!(reaches(|| w.data_syncs(), 1), 1);
    }

    #[test]
    fn a_background_thread_far_behind_holds_at_most_max_queued_ranges() {
        let tmp = tempfile::tempdir().unwrap();
        let file = File::create(tmp.path().join("big.bin")).unwrap();
        let w = writeback(tmp.path());
        w.handle.shared.gate.close();
        for step in 1..=3 * MAX_QUEUED as u64 {
            w.wrote(&file, step * STEP, STEP);
        }
        // The thread may hold one at the gate.
        let queued = w.handle.shared.lock().ranges.len();
        assert!((MAX_QUEUED - 1..=MAX_QUEUED).contains(&queued), "{queued}");
        w.handle.shared.gate.open();
    }

    #[test]
    fn large_files_are_waited_for_every_flush_bytes() {
        // Four files of 6 MiB: 24 MiB complete, one wait at 18 MiB (the
        // third file); the last 6 MiB are left to the final flush.
        let tmp = tempfile::tempdir().unwrap();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..4 {
            zip.start_file(format!("f{i}.bin"), stored).unwrap();
            zip.write_all(&vec![i as u8; 6 << 20]).unwrap();
        }
        let path = tmp.path().join("app.zip");
        std::fs::write(&path, zip.finish().unwrap().into_inner()).unwrap();
        let w = writeback(tmp.path());
        let dest = tmp.path().join("tree");
        let archive = File::open(&path).unwrap();
        extract_open_archive(&archive, &path, &dest, &Limits::default(), None, Some(&w)).unwrap();
        assert_eq!(reaches(|| w.ranges_started(), 4), 4);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.data_syncs(), 1);
    }

    #[test]
    fn the_background_thread_ends_with_the_deploy() {
        let tmp = tempfile::tempdir().unwrap();
        let w = writeback(tmp.path());
        let shared = Arc::downgrade(&w.handle.shared);
        drop(w.clone());
        assert!(shared.upgrade().is_some(), "a clone dropped, not the last");
        drop(w);
        let start = Instant::now();
        while shared.upgrade().is_some() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            shared.upgrade().is_none(),
            "the background thread still runs"
        );
    }
}
