//! Streaming extraction: entries are extracted while the package downloads.
//!
//! A ZIP's table of contents (the central directory) sits at its end, so an
//! extractor that starts from it waits for the whole download. This one walks
//! the local headers as the bytes arrive and hands each entry to a worker as
//! soon as its header is read; the worker reads the entry's data as it lands
//! on disk. Nothing it does is trusted: once the download is complete and its
//! digest matches, the archive is planned exactly as a downloaded one would be
//! (every check of `plan.rs`), and the central directory must agree, entry by
//! entry, with what was extracted, before modes, symlinks and directory modes
//! are applied from it.
//!
//! The download file is the buffer between the network and the workers: the
//! download runs ahead while both cores extract different entries, whatever
//! their sizes, in constant memory. (Handing the bytes over in memory instead
//! would save writing them once, but a bounded queue makes the download wait
//! for whichever worker inflates the largest entry.) The walker reads the
//! file through a 64 KiB window and sends small entries, with their data, to
//! the workers in batches; large ones go alone and are read from the file.
//!
//! Entries whose sizes follow their data (a data descriptor: jar, Go, bsdtar,
//! Python writing to a pipe) are decoded by the walker itself, since only
//! their data says where the next header is: a deflated (or bzip2, or
//! Deflate64) one ends where its compressed stream does; a stored one at the
//! first descriptor that describes the bytes before it (signed, or unsigned
//! and followed by a header). Either way the descriptor must match what was
//! decoded. Only the decoding is sequential: the walker hands the bytes to
//! the workers, which create and write the files (small entries whole, in
//! batches; larger ones piece by piece through a short pipe, so memory stays
//! bounded and the writing goes on beside the decoding). bzip2, LZMA and
//! Deflate64 entries with their sizes in the header go to the workers like
//! the others and are decoded by the zip crate, as after the download. Bytes
//! before the first entry (a launcher script) are skipped up to the first
//! local header within 1 MiB; bytes after the last one end the walk.
//!
//! Any doubt makes the walker step aside: a layout it does not handle (an
//! LZMA entry with a data descriptor, encryption, an unknown method, no
//! local header in the first MiB), a name, clash or limit that planning
//! would refuse, a failed entry, or a download that restarted. The caller
//! then removes the staging directory and extracts the complete file the
//! ordinary way, which gives the canonical result or error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use std::hash::{BuildHasher, Hasher, RandomState};

use zip::CompressionMethod;

use super::dirs::{Seen, SeenPaths};
use super::limits::check_path;
use super::plan::{
    check_entry, check_link_target, check_name, decode_name, unicode_path, Kind, Plan,
    MAX_LINK_TARGET,
};
use super::times::{entry_time, set_file_time, set_path_time, EntryTime};
use super::{finish_dirs, open_and_plan, umask, Extracted, Limits, SharedFile, CHUNK};
use crate::error::{Error, Result};
use crate::growth::{Growth, GrowthEnd};
use crate::prealloc;
use crate::progress::HEARTBEAT;
use crate::writeback::Writeback;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;

/// The mode files get while streaming; the real one comes from the central
/// directory at the end.
const STREAM_FILE_MODE: u32 = 0o644;

/// Most bytes before the first entry that streaming skips.
const MAX_PREFIX: u64 = 1 << 20;

/// Entries smaller than this are never refused for their ratio.
const RATIO_MIN_SIZE: u64 = 1 << 20;

/// Free space streaming always leaves beside what the download still needs.
const SPACE_RESERVE: u64 = 1 << 20;

/// How much lower (in `nice` steps) the walker and its workers run than
/// the thread that started them.
const EXTRACT_NICE: i32 = 10;

/// Lowers the calling thread's priority by [`EXTRACT_NICE`]; the workers it
/// starts inherit it. The download and its hash are a deploy's critical
/// path: every byte reaches the extraction through them, and nothing can
/// finish before the last byte is hashed, while extraction can catch up
/// afterwards on every core. At equal priority the inflating workers took
/// two thirds of a 2-core machine while the download and the hash waited
/// for it; behind them, the download ends sooner and the workers then have
/// both cores to themselves (assets over loopback: 0.93× the time). On
/// Linux the nice value belongs to the thread (`setpriority(2)`), so the
/// caller's threads keep theirs; it is only ever raised (lower priority),
/// which needs no privilege.
fn yield_to_the_download() {
    let _ = rustix::process::nice(EXTRACT_NICE);
}

/// What the walker extracted, as its local header described it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Streamed {
    name: Vec<u8>,
    method: CompressionMethod,
    crc: u32,
    compressed: u64,
    size: u64,
    dos_time: (u16, u16),
    is_dir: bool,
    /// The time the file was given, from the local header; the central
    /// directory's (which may differ) is applied at the end.
    mtime: EntryTime,
}

/// Why streaming stepped aside (shown in the report).
type StepAside = String;

/// A streaming extraction running beside a download.
pub(crate) struct Streamer {
    growth: Arc<Growth>,
    thread: Option<JoinHandle<std::result::Result<Walked, StepAside>>>,
    /// Disconnected once the walker's thread ends (however it ends); in a
    /// mutex only for `Sync` (the download's progress reads `entries`).
    ended: Mutex<Receiver<()>>,
    entries: Arc<AtomicU64>,
}

/// How a streaming extraction ended.
pub(crate) enum Finished {
    /// The tree in staging is exactly the archive's.
    Extracted(Extracted),
    /// Streaming stepped aside; extract the complete file instead.
    SteppedAside(StepAside),
}

impl Streamer {
    /// Starts extracting the open download file `download` into `staging`
    /// (which must not exist), starting the writeback of each file written
    /// when `writeback` is given (a durable deploy).
    pub(crate) fn start(
        download: &File,
        staging: &Path,
        limits: &Limits,
        writeback: Option<Writeback>,
    ) -> io::Result<Streamer> {
        let file = Arc::new(download.try_clone()?);
        let growth = Arc::new(Growth::default());
        let entries = Arc::new(AtomicU64::new(0));
        let walker = Walker {
            file,
            growth: growth.clone(),
            staging: staging.to_path_buf(),
            limits: limits.clone(),
            entries: entries.clone(),
            written: AtomicU64::new(0),
            writeback,
        };
        let (ending, ended) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("zipdeploy-stream".into())
            .spawn(move || {
                let _ending: SyncSender<()> = ending;
                yield_to_the_download();
                walker.run()
            })?;
        Ok(Streamer {
            growth,
            thread: Some(thread),
            ended: Mutex::new(ended),
            entries,
        })
    }

    /// Where the download reports its progress.
    pub(crate) fn growth(&self) -> &Growth {
        &self.growth
    }

    /// Entries extracted so far.
    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Stops the walker and waits for it; what it wrote stays in staging.
    fn stop(&mut self) {
        self.growth.end(GrowthEnd::Abandoned);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Call once the download is complete and its digest verified: waits for
    /// the walker, then checks what it extracted against the central
    /// directory and finishes the tree (modes, symlinks).
    ///
    /// `archive` is the download file as it was hashed (at `shown`, named in
    /// errors). An `Err` is the canonical verdict on the archive (the same
    /// that extracting the complete file gives), or the error of `tick`.
    ///
    /// While the workers still write (large files), `tick` is told the
    /// entries extracted every [`HEARTBEAT`]; an error from it (a cancel)
    /// stops them at their next read and is returned.
    pub(crate) fn finish(
        mut self,
        archive: &File,
        shown: &Path,
        staging: &Path,
        limits: &Limits,
        tick: &mut dyn FnMut(u64) -> Result<()>,
    ) -> Result<Finished> {
        self.growth.end(GrowthEnd::Complete);
        let ended = self.ended.get_mut().unwrap_or_else(|p| p.into_inner());
        while let Err(RecvTimeoutError::Timeout) = ended.recv_timeout(HEARTBEAT) {
            if let Err(e) = tick(self.entries.load(Ordering::Relaxed)) {
                self.growth.abandon();
                return Err(e);
            }
        }
        let walked = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(walked))) => walked,
            Some(Ok(Err(reason))) => return Ok(Finished::SteppedAside(reason)),
            Some(Err(_)) | None => {
                return Ok(Finished::SteppedAside("the extractor thread failed".into()))
            }
        };
        let (reader, mut plan) = open_and_plan(archive, shown, limits)?;
        if let Err(reason) = agrees(&reader, &plan, &walked, limits) {
            return Ok(Finished::SteppedAside(reason));
        }
        complete_tree(&mut plan, &reader, staging, &walked, limits)?;
        Ok(Finished::Extracted(Extracted {
            entries: plan.entries(),
            files: plan.files.len() as u64,
            dirs: plan.paths.dirs() as u64,
            symlinks: plan.symlinks.len() as u64,
            bytes: plan.files.iter().map(|f| f.size).sum(),
        }))
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the walker extracted, in the order of the file: for each entry the
/// offset of its local header, a keyed hash of what that header says (name,
/// sizes, CRC-32, method, time, kind), and the time its file was given:
/// 32 bytes an entry, no name.
///
/// Held in chunks of [`WALKED_CHUNK`] entries: a growing `Vec` would copy
/// itself, and for a moment take 1.5 times its size, at every doubling.
#[derive(Default)]
pub(crate) struct Walked {
    keys: RandomState,
    chunks: Vec<Vec<WalkedEntry>>,
    len: usize,
}

/// Entries in one chunk of [`Walked`] (128 KiB).
const WALKED_CHUNK: usize = 4096;

struct WalkedEntry {
    header: u64,
    digest: u64,
    mtime: EntryTime,
}

impl Walked {
    /// The hash of what a local header or a central record says of an entry.
    #[allow(clippy::too_many_arguments)]
    fn digest(
        &self,
        name: &[u8],
        crc: u32,
        compressed: u64,
        size: u64,
        method: u16,
        dos: (u16, u16),
        is_dir: bool,
    ) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_usize(name.len());
        h.write(name);
        h.write_u32(crc);
        h.write_u64(compressed);
        h.write_u64(size);
        h.write_u16(method);
        h.write_u16(dos.0);
        h.write_u16(dos.1);
        h.write_u8(u8::from(is_dir));
        h.finish()
    }

    /// Records the entry whose local header is at `header` (after all
    /// those recorded so far).
    fn push(&mut self, header: u64, method: u16, s: &Streamed) {
        let digest = self.digest(
            &s.name,
            s.crc,
            s.compressed,
            s.size,
            method,
            s.dos_time,
            s.is_dir,
        );
        if self.chunks.last().is_none_or(|c| c.len() == WALKED_CHUNK) {
            self.chunks.push(Vec::with_capacity(WALKED_CHUNK));
        }
        let chunk = self.chunks.last_mut().expect("just pushed");
        chunk.push(WalkedEntry {
            header,
            digest,
            mtime: s.mtime,
        });
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The entry whose local header is at `header` (entries are pushed in
    /// the order of the file).
    fn get(&self, header: u64) -> Option<&WalkedEntry> {
        let after = self.chunks.partition_point(|c| c[0].header <= header);
        let chunk = &self.chunks[after.checked_sub(1)?];
        let i = chunk.binary_search_by_key(&header, |e| e.header).ok()?;
        chunk.get(i)
    }
}

/// Checks that the central directory describes exactly what was extracted:
/// the same entries at the same offsets, with the same names, sizes, CRCs,
/// methods and times, and the same kinds.
fn agrees(
    reader: &SharedFile,
    plan: &Plan,
    walked: &Walked,
    limits: &Limits,
) -> std::result::Result<(), StepAside> {
    if plan.entries() != walked.len() as u64 {
        return Err(format!(
            "the central directory lists {} entries, the local headers {}",
            plan.entries(),
            walked.len()
        ));
    }
    let mut differs = None;
    let read = plan
        .directory
        .each(&mut reader.clone(), |index, record, _| -> Result<()> {
            // Files and symlinks were streamed as files; directories as
            // directories.
            let is_dir = check_entry(record, limits)?.kind == Kind::Dir;
            let header = record.header; // the archive offset added
            let digest = walked.digest(
                &record.name,
                record.crc,
                record.compressed,
                record.size,
                record.method,
                record.dos,
                is_dir,
            );
            match walked.get(header) {
                Some(local) if local.digest == digest => Ok(()),
                Some(_) => {
                    differs = Some(format!(
                        "entry {:?} differs between its local header and the central directory",
                        String::from_utf8_lossy(&record.name)
                    ));
                    Err(Error::CorruptArchive(String::new()))
                }
                None => {
                    differs = Some(format!("entry #{index} was not seen while streaming"));
                    Err(Error::CorruptArchive(String::new()))
                }
            }
        });
    match (read, differs) {
        (_, Some(reason)) => Err(reason),
        (Err(e), None) => Err(e.to_string()),
        (Ok(()), None) => Ok(()),
    }
}

/// Applies what only the central directory knows: file modes and times
/// (where its times differ from the local headers'), symlinks (streamed as
/// files holding their target), directory modes and times.
fn complete_tree(
    plan: &mut Plan,
    reader: &SharedFile,
    staging: &Path,
    walked: &Walked,
    limits: &Limits,
) -> Result<()> {
    let created_mode = STREAM_FILE_MODE & !umask();
    plan.directory
        .each(&mut reader.clone(), |_, record, _| -> Result<()> {
            let entry = check_entry(record, limits)?;
            let path = staging.join(&entry.path);
            let mtime = record.mtime();
            match entry.kind {
                Kind::Dir => {}
                Kind::File => {
                    if let Some(mode) = entry.mode.filter(|m| *m != created_mode) {
                        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                            .map_err(Error::io("chmod", &path))?;
                    }
                    let header = record.header; // the archive offset added
                    if walked.get(header).map(|w| w.mtime) != Some(mtime) {
                        set_path_time(&path, mtime).map_err(Error::io("set the time of", &path))?;
                    }
                }
                Kind::Symlink => {
                    let mut target = Vec::new();
                    File::open(&path)
                        .and_then(|f| f.take(MAX_LINK_TARGET + 1).read_to_end(&mut target))
                        .map_err(Error::io("read", &path))?;
                    let target = check_link_target(&entry.path, &target).map_err(|reason| {
                        Error::UnsafeEntry {
                            entry: entry.name.clone(),
                            reason: format!("symlink {reason}"),
                        }
                    })?;
                    fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                    std::os::unix::fs::symlink(&target, &path)
                        .map_err(Error::io("symlink", &path))?;
                    set_path_time(&path, mtime).map_err(Error::io("set the time of", &path))?;
                }
            }
            Ok(())
        })?;
    finish_dirs(plan, reader, staging, limits)
}

/// Bytes a reader that caught up with the download waits for (or its end)
/// before it goes on: it then sleeps and wakes once per this stretch, not
/// once per network chunk (assets over loopback: about 1,600 fewer sleeps).
const CAUGHT_UP_WAIT: u64 = 1 << 20;

/// Reads a download file while it grows: waits for bytes not yet written,
/// and stops at `end`.
struct GrowingReader<'a> {
    file: &'a File,
    growth: &'a Growth,
    pos: u64,
    end: u64,
}

impl Read for GrowingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let want = self.pos.saturating_add(CAUGHT_UP_WAIT).min(self.end);
        let available = self
            .growth
            .wait_for(self.pos, want)
            .map_err(|_| io::Error::other("the download restarted or failed"))?;
        let n = (available.min(self.end).saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One file for a worker to extract.
struct Job {
    path: PathBuf,
    /// The time the file gets (the local header's).
    mtime: EntryTime,
    data: JobData,
}

/// Where a worker finds a file's bytes.
enum JobData {
    /// The compressed data its local header declares, which the worker
    /// decodes and checks against the declared length and CRC.
    Declared {
        /// Offset of the local header (other methods than stored and
        /// deflate are decoded by the zip crate, which reads it again).
        header: u64,
        data_start: u64,
        /// The compressed data when the walker already read it (small
        /// entries), which spares the worker a `pread`.
        inline: Option<Vec<u8>>,
        streamed: Streamed,
    },
    /// All the bytes of a small entry with a data descriptor, which the
    /// walker decoded (and checked) to find where the entry ends.
    Decoded(Vec<u8>),
    /// A larger entry with a data descriptor, piece by piece as the walker
    /// decodes it: writing goes on beside the decoding.
    Piped(Receiver<Piece>),
}

/// What goes through the pipe of a `JobData::Piped` entry.
enum Piece {
    Bytes(Vec<u8>),
    /// All bytes were sent and the data descriptor matched them. A pipe
    /// closed without it is an entry the walker gave up on.
    End,
}

/// Largest entry with a data descriptor handed to a worker in one piece;
/// larger ones go through a pipe.
const DECODED_MAX: usize = WINDOW / 2;

/// Bytes a pipe piece gathers before it is sent.
const PIECE: usize = 64 * 1024;

/// Pieces a pipe holds: the walker runs at most this far ahead of the
/// worker writing the entry.
const PIPE_DEPTH: usize = 4;

/// Small files go to the workers in batches: one wake-up of a worker per
/// batch, not per file. A batch leaves when it is full, with any large file,
/// and before the walker refills its window (when it may wait for the
/// download).
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    /// Bytes of the jobs (what data they may hold).
    bytes: u64,
}

impl Batch {
    fn push(&mut self, job: Job) {
        self.bytes += match &job.data {
            JobData::Declared { streamed, .. } => streamed.compressed,
            // Counted twice: about three times their compressed size, yet
            // batched by the same rule.
            JobData::Decoded(bytes) => 2 * bytes.len() as u64,
            JobData::Piped(_) => 0,
        };
        self.jobs.push(job);
    }

    fn is_full(&self) -> bool {
        self.jobs.len() >= MAX_BATCH || self.bytes >= WINDOW as u64
    }

    fn send(&mut self, jobs: &SyncSender<Vec<Job>>) -> std::result::Result<(), StepAside> {
        self.bytes = 0;
        if self.jobs.is_empty() {
            return Ok(());
        }
        jobs.send(std::mem::take(&mut self.jobs))
            .map_err(|_| "the workers stopped".into())
    }
}

/// The walker's view of the download: one large read serves the headers
/// (and the data of small entries) of many entries, where reading each
/// field on its own cost four `pread`s per entry.
#[derive(Default)]
struct Window {
    bytes: Vec<u8>,
    /// Offset of `bytes[0]` in the download.
    start: u64,
}

/// Bytes the walker reads at a time.
const WINDOW: usize = 64 * 1024;

/// Largest compressed entry handed to a worker from the window.
const INLINE_MAX: u64 = 16 * 1024;

/// Most small files in one batch for a worker.
const MAX_BATCH: usize = 64;

impl Window {
    /// Reads exactly `buf.len()` bytes at `pos`, waiting for them.
    fn read_at(
        &mut self,
        walker: &Walker,
        pos: u64,
        buf: &mut [u8],
    ) -> std::result::Result<(), StepAside> {
        let len = buf.len() as u64;
        if self.slice(pos, len).is_none() {
            self.fill(walker, pos, buf.len())?;
        }
        match self.slice(pos, len) {
            Some(bytes) => buf.copy_from_slice(bytes),
            // Longer than the window (a long extra field): read it directly.
            None => walker
                .reader(pos, len)
                .read_exact(buf)
                .map_err(read_failure)?,
        }
        Ok(())
    }

    /// Reads a full window at `pos` (less only at the end of the file), so
    /// that a walker close behind the download does not read in slivers;
    /// fails if fewer than `need` bytes exist.
    fn fill(
        &mut self,
        walker: &Walker,
        pos: u64,
        need: usize,
    ) -> std::result::Result<(), StepAside> {
        self.bytes.resize(WINDOW, 0);
        self.start = pos;
        let mut reader = walker.reader(pos, WINDOW as u64);
        let mut filled = 0;
        while filled < WINDOW {
            match read_some(&mut reader, &mut self.bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    self.bytes.clear();
                    return Err(read_failure(e));
                }
            }
        }
        self.bytes.truncate(filled);
        if filled < need.min(WINDOW) {
            return Err(read_failure(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// `len` bytes at `pos`, if the window holds them.
    fn slice(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let from = usize::try_from(pos.checked_sub(self.start)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(from..to)
    }

    /// The bytes the window holds from `pos` on (none if it starts after).
    fn tail(&self, pos: u64) -> &[u8] {
        pos.checked_sub(self.start)
            .and_then(|from| usize::try_from(from).ok())
            .and_then(|from| self.bytes.get(from..))
            .unwrap_or_default()
    }

    /// A small entry's data, if the window holds all of it.
    fn small_slice(&self, pos: u64, len: u64) -> Option<&[u8]> {
        (len <= INLINE_MAX).then(|| self.slice(pos, len)).flatten()
    }
}

fn read_failure(e: io::Error) -> StepAside {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the archive ends inside a local header".to_string(),
        _ => format!("reading the download: {e}"),
    }
}

/// Walks the local headers and dispatches entries to workers.
struct Walker {
    file: Arc<File>,
    growth: Arc<Growth>,
    staging: PathBuf,
    limits: Limits,
    entries: Arc<AtomicU64>,
    /// Bytes the workers have written, or reserved on disk for the file
    /// they write.
    written: AtomicU64,
    /// For a durable deploy: starts the writeback of the files written.
    writeback: Option<Writeback>,
}

/// Keeps streaming from taking the disk space the download still needs:
/// before an entry is handed out, the free space must cover the rest of the
/// download, the entries in flight and this one, plus a reserve.
#[derive(Default)]
struct SpaceCheck {
    /// Bytes handed to workers so far.
    dispatched: u64,
    /// Bytes handed out since the last `statvfs`.
    unchecked: u64,
    /// Free space at the last `statvfs`.
    free: u64,
}

impl SpaceCheck {
    fn room_for(&mut self, size: u64, walker: &Walker) -> bool {
        self.dispatched += size;
        self.unchecked += size;
        // One statvfs per MiB handed out keeps the cost negligible.
        if self.free > 0 && self.unchecked < (1 << 20) && self.unchecked < self.free / 4 {
            return true;
        }
        let Ok(stat) = rustix::fs::statvfs(&walker.staging) else {
            return true; // not reported: the writes will tell
        };
        self.unchecked = 0;
        self.free = stat.f_bavail.saturating_mul(stat.f_frsize);
        let in_flight = self
            .dispatched
            .saturating_sub(walker.written.load(Ordering::Relaxed));
        let download = walker.growth.remaining().unwrap_or(0);
        self.free >= download + in_flight + SPACE_RESERVE
    }
}

impl Walker {
    fn run(self) -> std::result::Result<Walked, StepAside> {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&self.staging)
            .map_err(|e| format!("cannot create the staging directory: {e}"))?;
        let failed: Mutex<Option<StepAside>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        // Batches hold at most about a window's worth of small entries'
        // data, so the queue holds at most about 1 MiB of it.
        let (jobs, queue) = sync_channel::<Vec<Job>>(16);
        let queue = Mutex::new(queue);
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let walked = std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| self.work(&queue, &stop, &failed));
            }
            let walked = self.walk(&jobs, &stop);
            drop(jobs);
            walked
        });
        if let Some(reason) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(reason);
        }
        walked
    }

    fn reader(&self, pos: u64, len: u64) -> GrowingReader<'_> {
        GrowingReader {
            file: &self.file,
            growth: &self.growth,
            pos,
            end: pos.saturating_add(len),
        }
    }

    fn walk(
        &self,
        jobs: &SyncSender<Vec<Job>>,
        stop: &AtomicBool,
    ) -> std::result::Result<Walked, StepAside> {
        let mut window = Window::default();
        let mut batch = Batch::default();
        let mut walked = Walked::default();
        let mut kinds = SeenPaths::default();
        let mut total_size = 0u64;
        let mut space = SpaceCheck::default();
        // For the entries the walker extracts itself (data descriptors).
        let mut own_tools: Option<WorkerTools> = None;
        let mut pos = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err("an entry failed while streaming".into());
            }
            if batch.is_full() || window.slice(pos, 30).is_none() {
                batch.send(jobs)?; // before the walker may wait for the download
            }
            let mut sig = [0u8; 4];
            window.read_at(self, pos, &mut sig)?;
            match u32::from_le_bytes(sig) {
                LOCAL_HEADER => {}
                CENTRAL_HEADER | END_OF_CENTRAL | ZIP64_END_OF_CENTRAL => {
                    batch.send(jobs)?;
                    return Ok(walked);
                }
                _ if pos == 0 => {
                    pos = self.first_header()?;
                    continue;
                }
                // Bytes after the last entry (before the central
                // directory): the entries end here. Any the central
                // directory lists beyond are missed, so it disagrees.
                _ => {
                    batch.send(jobs)?;
                    return Ok(walked);
                }
            }
            let mut fixed = [0u8; 26];
            window.read_at(self, pos + 4, &mut fixed)?;
            let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
            let u32_at =
                |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
            let (flags, method) = (u16_at(2), u16_at(4));
            let method_number = method;
            let dos_time = (u16_at(8), u16_at(6));
            let crc = u32_at(10);
            let (name_len, extra_len) = (u64::from(u16_at(22)), u64::from(u16_at(24)));
            if flags & 1 != 0 {
                return Err("an entry is encrypted".into());
            }
            // Sizes and CRC after the data (jar, Go, bsdtar, Python to a
            // pipe): the entry is extracted here, to find where it ends.
            let described = flags & 8 != 0;
            let method = match method {
                0 => CompressionMethod::Stored,
                8 => CompressionMethod::Deflated,
                9 => CompressionMethod::Deflate64,
                12 => CompressionMethod::Bzip2,
                14 if !described => CompressionMethod::Lzma,
                other if described => {
                    return Err(format!("compression method {other} with a data descriptor"))
                }
                other => return Err(format!("compression method {other}")),
            };
            let mut name = vec![0u8; name_len as usize];
            window.read_at(self, pos + 30, &mut name)?;
            let mut extra = vec![0u8; extra_len as usize];
            window.read_at(self, pos + 30 + name_len, &mut extra)?;
            let (compressed, size) = if described {
                (0, 0) // known once the entry is extracted
            } else {
                sizes(u32_at(14), u32_at(18), &extra)?
            };
            let data_start = pos + 30 + name_len + extra_len;
            let name = unicode_path(&name, &extra).unwrap_or(name);
            if name.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err("a name has control characters".into());
            }
            let text = decode_name(&name);
            let (path, is_dir) = check_name(&text).map_err(|r| format!("entry {text:?}: {r}"))?;
            check_path(path.as_os_str().as_encoded_bytes(), &self.limits)
                .map_err(|e| e.to_string())?;
            let mtime = entry_time(dos_time, &extra);
            total_size = total_size.saturating_add(size);
            let count = walked.len() as u64 + 1;
            if count > self.limits.max_entries || total_size > self.limits.max_total_size {
                return Err("a limit would be exceeded".into());
            }
            if size >= 1 << 20 && size / compressed.max(1) > self.limits.max_ratio {
                return Err("an entry's compression ratio is over the limit".into());
            }
            if !space.room_for(size, self) {
                return Err("too little free space to extract while downloading".into());
            }
            if !path.as_os_str().is_empty() {
                self.claim(&mut kinds, &path, is_dir)?;
            }
            let mut streamed = Streamed {
                name,
                method,
                crc,
                compressed,
                size,
                dos_time,
                is_dir,
                mtime,
            };
            if described {
                // The batch is not sent before the decoding, which may wait
                // for the download: a small entry's data is mostly in the
                // window, and a wake-up per entry or two cost more than the
                // rare wait (a large entry's pipe sends it).
                let budget = self.limits.max_total_size - total_size;
                let tools = own_tools.get_or_insert_with(WorkerTools::new);
                let described = Described {
                    path,
                    data_start,
                    zip64: has_zip64_field(&extra),
                };
                let mut handover = Handover {
                    batch: &mut batch,
                    jobs,
                };
                let end = self.decode_described(
                    &described,
                    &mut streamed,
                    &mut window,
                    tools,
                    budget,
                    &mut space,
                    &mut handover,
                )?;
                total_size += streamed.size;
                walked.push(pos, method_number, &streamed);
                pos = end;
                continue;
            }
            walked.push(pos, method_number, &streamed);
            if path.as_os_str().is_empty() {
                // `./`: the root, which planning skips too (a `.` file it
                // refuses, so step aside for one).
                if !is_dir {
                    return Err("an entry names the root but is not a directory".into());
                }
                self.entries.fetch_add(1, Ordering::Relaxed);
            } else if is_dir {
                self.entries.fetch_add(1, Ordering::Relaxed);
            } else {
                let inline = window
                    .small_slice(data_start, compressed)
                    .map(<[u8]>::to_vec);
                let large = inline.is_none();
                batch.push(Job {
                    path,
                    mtime,
                    data: JobData::Declared {
                        header: pos,
                        data_start,
                        inline,
                        streamed,
                    },
                });
                if large {
                    batch.send(jobs)?;
                }
            }
            pos = data_start + compressed;
        }
    }

    /// The offset of the first local header of an archive with bytes before
    /// its first entry (a self-extracting stub, a launcher script). A false
    /// match in those bytes is harmless: the central directory's offsets
    /// must agree with where the walker found its entries.
    fn first_header(&self) -> std::result::Result<u64, StepAside> {
        let mut head = Vec::new();
        self.reader(0, MAX_PREFIX)
            .read_to_end(&mut head)
            .map_err(read_failure)?;
        let signature = LOCAL_HEADER.to_le_bytes();
        match head.windows(4).position(|w| w == signature) {
            Some(at) if at > 0 => Ok(at as u64),
            _ => Err(format!(
                "no local header in the first {} KiB",
                MAX_PREFIX >> 10
            )),
        }
    }

    /// Decodes an entry whose sizes and CRC follow its data, in the walker:
    /// only decoding it finds where it ends. A worker writes the file from
    /// what `handover` passes on. Fills in `streamed` from the data and
    /// returns the offset after the data descriptor, whose fields must agree.
    #[allow(clippy::too_many_arguments)]
    fn decode_described(
        &self,
        entry: &Described,
        streamed: &mut Streamed,
        window: &mut Window,
        tools: &mut WorkerTools,
        budget: u64,
        space: &mut SpaceCheck,
        handover: &mut Handover<'_>,
    ) -> std::result::Result<u64, StepAside> {
        let fail = |what: String| format!("entry {:?}: {what}", entry.path.display().to_string());
        let root = entry.path.as_os_str().is_empty();
        // Directories hold no data; files go to a worker as they decode.
        let is_file = !(streamed.is_dir || root);
        let mut output = Output::default();
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut emit = |bytes: &[u8]| {
            written += bytes.len() as u64;
            if written > budget {
                return Err("a limit would be exceeded".to_string());
            }
            if !space.room_for(bytes.len() as u64, self) {
                return Err("too little free space to extract while downloading".into());
            }
            crc.update(bytes);
            match is_file {
                true => output.push(bytes, entry, streamed.mtime, handover),
                false if bytes.is_empty() => Ok(()),
                false => Err(fail("a directory with data".into())),
            }
        };
        // What the window holds of the data first (all of it for small
        // entries), then the download.
        let ahead = window.tail(entry.data_start);
        let mut raw = ahead.chain(self.reader(entry.data_start + ahead.len() as u64, u64::MAX));
        let compressed = match streamed.method {
            CompressionMethod::Deflated => {
                tools
                    .inflate(&mut raw, u64::MAX, self.limits.max_ratio, &mut emit)
                    .map_err(fail)?;
                tools.inflater.total_in()
            }
            CompressionMethod::Bzip2 => tools
                .decode(
                    &mut bzip2::Decompress::new(false),
                    &mut raw,
                    u64::MAX,
                    self.limits.max_ratio,
                    &mut emit,
                )
                .map_err(fail)?,
            CompressionMethod::Deflate64 => tools
                .decode(
                    &mut *Box::new(deflate64::InflaterManaged::new()),
                    &mut raw,
                    u64::MAX,
                    self.limits.max_ratio,
                    &mut emit,
                )
                .map_err(fail)?,
            CompressionMethod::Stored if is_file => copy_to_descriptor(&mut raw, tools, &mut emit)?,
            _ => 0, // a stored directory
        };
        streamed.crc = crc.finalize();
        streamed.size = written;
        // The Deflate64 decoder may have taken a few bytes beyond its
        // stream's end into its bit buffer: the descriptor, whose
        // compressed size must be where it lies, says how many.
        let slack = match streamed.method {
            CompressionMethod::Deflate64 => compressed.min(DEFLATE64_SLACK),
            _ => 0,
        };
        let mut end = None;
        for early in 0..=slack {
            streamed.compressed = compressed - early;
            let at = entry.data_start + streamed.compressed;
            let mut descriptor = [0u8; 24];
            window.read_at(self, at, &mut descriptor)?;
            end = descriptor_len(&descriptor, streamed, entry.zip64).map(|len| at + len);
            if end.is_some() {
                break;
            }
        }
        let end = end.ok_or_else(|| fail("the data descriptor does not match the data".into()))?;
        match is_file {
            true => output.finish(entry, streamed.mtime, handover)?,
            false => {
                self.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(end)
    }

    /// Records `path` and creates its directories, stepping aside on any
    /// clash planning would refuse.
    fn claim(
        &self,
        kinds: &mut SeenPaths,
        path: &Path,
        is_dir: bool,
    ) -> std::result::Result<(), StepAside> {
        let clash = || {
            format!(
                "{:?} clashes with another entry",
                path.display().to_string()
            )
        };
        // Directories not seen yet, deepest first: up to the first known
        // one (whose own parents are known too).
        let mut missing: Vec<&Path> = Vec::new();
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            match kinds.get(dir) {
                Some(Seen::Dir { .. }) => break,
                Some(Seen::File) => return Err(clash()),
                None => missing.push(dir),
            }
        }
        // Implied directories count as entries (as planning counts them).
        if (kinds.len() + missing.len() + 1) as u64 > self.limits.max_entries {
            return Err("a limit would be exceeded".into());
        }
        for dir in missing.into_iter().rev() {
            self.mkdir(dir)?;
            kinds.insert(dir, Seen::Dir { listed: false });
        }
        match kinds.get(path) {
            // Made for an entry below it, listed later (Windows tools).
            Some(Seen::Dir { listed: false }) if is_dir => {}
            Some(_) => return Err(clash()),
            None if is_dir => self.mkdir(path)?,
            None => {}
        }
        let seen = match is_dir {
            true => Seen::Dir { listed: true },
            false => Seen::File,
        };
        kinds.insert(path, seen);
        Ok(())
    }

    fn mkdir(&self, rel: &Path) -> std::result::Result<(), StepAside> {
        let path = self.staging.join(rel);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))
    }

    /// A worker: extracts queued files until the queue closes.
    fn work(
        &self,
        queue: &Mutex<Receiver<Vec<Job>>>,
        stop: &AtomicBool,
        failed: &Mutex<Option<StepAside>>,
    ) {
        let mut tools = WorkerTools::new();
        loop {
            let batch = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(batch) => batch,
                Err(_) => return,
            };
            for job in batch {
                if stop.load(Ordering::Relaxed) {
                    // Skip the rest; the queue is still drained, so the
                    // walker is never blocked.
                    break;
                }
                match self.extract(job, &mut tools, stop) {
                    Ok(true) => {
                        self.entries.fetch_add(1, Ordering::Relaxed);
                    }
                    // The walker gave up on the entry and says why.
                    Ok(false) => {}
                    Err(reason) => {
                        stop.store(true, Ordering::Relaxed);
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(reason);
                    }
                }
            }
        }
    }

    /// Writes one file; `Ok(false)` when the walker gave up on it first.
    fn extract(
        &self,
        job: Job,
        tools: &mut WorkerTools,
        stop: &AtomicBool,
    ) -> std::result::Result<bool, StepAside> {
        let path = self.staging.join(&job.path);
        let fail = |what: String| format!("entry {:?}: {what}", job.path.display().to_string());
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(STREAM_FILE_MODE)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
        // A large file's blocks are reserved at once (not for a durable
        // deploy: reserved blocks are converted when written out, which
        // would add to its final flush).
        let reserved = match &job.data {
            JobData::Declared { streamed, .. } if self.writeback.is_none() => {
                prealloc::reserve(&out, 0, streamed.size).then_some(streamed.size)
            }
            _ => None,
        };
        if let Some(size) = reserved {
            self.written.fetch_add(size, Ordering::Relaxed);
        }
        let mut len = 0u64;
        let mut write = |bytes: &[u8]| {
            // Cancelled: a large entry whose data is all there stops too.
            if self.growth.is_abandoned() {
                return Err("the download restarted or failed".to_string());
            }
            out.write_all(bytes).map_err(|e| e.to_string())?;
            if reserved.is_none() {
                self.written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            len += bytes.len() as u64;
            if let Some(w) = &self.writeback {
                w.wrote(&out, len, bytes.len() as u64);
            }
            Ok(())
        };
        let outcome = match job.data {
            JobData::Declared {
                header,
                data_start,
                inline,
                streamed,
            } => {
                let source = DeclaredData {
                    header,
                    data_start,
                    inline: inline.as_deref(),
                    streamed: &streamed,
                };
                self.decode_declared(&source, tools, &mut write)
            }
            JobData::Decoded(bytes) => write(&bytes),
            JobData::Piped(pieces) => loop {
                match pieces.recv() {
                    Ok(Piece::Bytes(bytes)) if !stop.load(Ordering::Relaxed) => {
                        if let Err(e) = write(&bytes) {
                            break Err(e);
                        }
                    }
                    Ok(Piece::End) => break Ok(()),
                    // Stopped, or the walker gave up: closing the pipe
                    // stops the walker too.
                    _ => return Ok(false),
                }
            },
        };
        outcome.map_err(fail)?;
        set_file_time(&out, job.mtime).map_err(|e| fail(e.to_string()))?;
        if let Some(w) = &self.writeback {
            w.finished(&out, len);
        }
        Ok(true)
    }

    /// Decodes an entry whose sizes were declared, handing the bytes to
    /// `write`; they must match the declared length and CRC.
    fn decode_declared(
        &self,
        job: &DeclaredData<'_>,
        tools: &mut WorkerTools,
        write: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
    ) -> std::result::Result<(), StepAside> {
        let s = job.streamed;
        let mut from_file;
        let mut from_window;
        let raw: &mut dyn Read = match job.inline {
            Some(bytes) => {
                from_window = bytes;
                &mut from_window
            }
            None => {
                from_file = self.reader(job.data_start, s.compressed);
                &mut from_file
            }
        };
        // crc32fast uses PCLMULQDQ where the CPU has it (several times faster
        // than zlib-rs's portable CRC behind `flate2::Crc`).
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut emit = |bytes: &[u8]| {
            written += bytes.len() as u64;
            if written > s.size {
                return Err("data longer than declared".into());
            }
            crc.update(bytes);
            write(bytes)
        };
        match s.method {
            CompressionMethod::Deflated => tools.inflate(raw, s.compressed, u64::MAX, &mut emit)?,
            CompressionMethod::Stored => copy(raw, &mut tools.output, &mut emit)?,
            // bzip2, LZMA, Deflate64: the zip crate's decoders, as when
            // extracting after the download.
            _ => {
                let mut from_header = self.reader(job.header, u64::MAX);
                let options = zip::read::ZipReadOptions::new()
                    .override_compressed_size(s.compressed)
                    .override_uncompressed_size(s.size)
                    .override_crc(s.crc);
                let mut entry =
                    zip::read::read_zipfile_from_stream_with_options(&mut from_header, options)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "no local header".to_string())?;
                copy(&mut entry, &mut tools.output, &mut emit)?;
            }
        }
        if written != s.size || crc.finalize() != s.crc {
            return Err("length or CRC-32 does not match".into());
        }
        Ok(())
    }
}

/// The declared data of a job, borrowed.
struct DeclaredData<'a> {
    header: u64,
    data_start: u64,
    inline: Option<&'a [u8]>,
    streamed: &'a Streamed,
}

/// One worker's inflater and buffers, made once and reused for every entry:
/// allocating (and zeroing) them per entry cost more than inflating the
/// small files of a typical application.
pub(crate) struct WorkerTools {
    inflater: flate2::Decompress,
    input: Vec<u8>,
    pub(crate) output: Vec<u8>,
}

impl WorkerTools {
    pub(crate) fn new() -> Self {
        WorkerTools {
            inflater: flate2::Decompress::new(false),
            input: vec![0u8; CHUNK],
            output: vec![0u8; CHUNK],
        }
    }

    /// Inflates the `compressed` raw-deflate bytes of `raw` (at most; the
    /// stream ends itself), handing the output to `emit` piece by piece.
    /// Past 1 MiB of output, more than `max_ratio` times the input consumed
    /// is refused (entries whose sizes are known were checked before).
    pub(crate) fn inflate(
        &mut self,
        raw: &mut dyn Read,
        compressed: u64,
        max_ratio: u64,
        emit: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
    ) -> std::result::Result<(), StepAside> {
        self.inflater.reset(false);
        self.decode(&mut Inflater, raw, compressed, max_ratio, emit)
            .map(|_| ())
    }

    /// Runs `decoder` over the `compressed` bytes of `raw` (at most) to the
    /// end of its stream, as `inflate` does; returns the bytes it used.
    fn decode<D: Decoder + ?Sized>(
        &mut self,
        decoder: &mut D,
        raw: &mut dyn Read,
        compressed: u64,
        max_ratio: u64,
        emit: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
    ) -> std::result::Result<u64, StepAside> {
        // Small entries read only what they need.
        let want = usize::try_from(compressed).unwrap_or(usize::MAX).min(CHUNK);
        let (mut start, mut end) = (0, 0);
        let (mut total_in, mut total_out) = (0u64, 0u64);
        loop {
            if start == end {
                end = read_some(raw, &mut self.input[..want]).map_err(|e| e.to_string())?;
                start = 0;
            }
            let step = decoder.step(self, start..end)?;
            start += step.used;
            total_in += step.used as u64;
            total_out += step.made as u64;
            emit(&self.output[..step.made])?;
            if total_out >= RATIO_MIN_SIZE && total_out / total_in.max(1) > max_ratio {
                return Err("an entry's compression ratio is over the limit".into());
            }
            if step.ended {
                return Ok(total_in);
            }
            // No progress: the input ran out before the stream's end.
            if step.used == 0 && step.made == 0 {
                return Err(format!("the {} data is truncated", decoder.name()));
            }
        }
    }
}

/// Most bytes the Deflate64 decoder reads past its stream's end.
const DEFLATE64_SLACK: u64 = 4;

/// What one step of a decoder did.
struct Step {
    used: usize,
    made: usize,
    /// The stream ended (all its output made).
    ended: bool,
}

/// A decoder whose input ends itself: the walker runs one over an entry
/// with a data descriptor to find where its data ends.
trait Decoder {
    fn name(&self) -> &'static str;
    /// Decodes what it can of `tools.input[input]` into `tools.output`.
    fn step(
        &mut self,
        tools: &mut WorkerTools,
        input: std::ops::Range<usize>,
    ) -> std::result::Result<Step, StepAside>;
}

/// Deflate, with the worker's own inflater (kept from entry to entry).
struct Inflater;

impl Decoder for Inflater {
    fn name(&self) -> &'static str {
        "deflate"
    }

    fn step(
        &mut self,
        tools: &mut WorkerTools,
        input: std::ops::Range<usize>,
    ) -> std::result::Result<Step, StepAside> {
        let inflater = &mut tools.inflater;
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(
                &tools.input[input],
                &mut tools.output,
                flate2::FlushDecompress::None,
            )
            .map_err(|e| format!("invalid deflate data: {e}"))?;
        Ok(Step {
            used: (inflater.total_in() - before_in) as usize,
            made: (inflater.total_out() - before_out) as usize,
            ended: status == flate2::Status::StreamEnd,
        })
    }
}

impl Decoder for bzip2::Decompress {
    fn name(&self) -> &'static str {
        "bzip2"
    }

    fn step(
        &mut self,
        tools: &mut WorkerTools,
        input: std::ops::Range<usize>,
    ) -> std::result::Result<Step, StepAside> {
        let (before_in, before_out) = (self.total_in(), self.total_out());
        let status = self
            .decompress(&tools.input[input], &mut tools.output)
            .map_err(|e| format!("invalid bzip2 data: {e}"))?;
        Ok(Step {
            used: (self.total_in() - before_in) as usize,
            made: (self.total_out() - before_out) as usize,
            ended: status == bzip2::Status::StreamEnd,
        })
    }
}

impl Decoder for deflate64::InflaterManaged {
    fn name(&self) -> &'static str {
        "Deflate64"
    }

    fn step(
        &mut self,
        tools: &mut WorkerTools,
        input: std::ops::Range<usize>,
    ) -> std::result::Result<Step, StepAside> {
        let result = self.inflate(&tools.input[input], &mut tools.output);
        if result.data_error {
            return Err("invalid Deflate64 data".into());
        }
        Ok(Step {
            used: result.bytes_consumed,
            made: result.bytes_written,
            // Finished, and all its output handed out.
            ended: self.finished() && result.bytes_written < tools.output.len(),
        })
    }
}

/// Where an entry with a data descriptor is and how its descriptor is laid.
struct Described {
    path: PathBuf,
    data_start: u64,
    /// The local header has a zip64 field: the descriptor's sizes are 8
    /// bytes each, most likely.
    zip64: bool,
}

/// Where the walker sends the jobs it makes.
struct Handover<'a> {
    batch: &'a mut Batch,
    jobs: &'a SyncSender<Vec<Job>>,
}

/// What the walker decoded of a file with a data descriptor, on its way to a
/// worker: gathered while the file is small, then piped.
#[derive(Default)]
struct Output {
    pending: Vec<u8>,
    pipe: Option<SyncSender<Piece>>,
}

impl Output {
    fn push(
        &mut self,
        bytes: &[u8],
        entry: &Described,
        mtime: EntryTime,
        handover: &mut Handover<'_>,
    ) -> std::result::Result<(), StepAside> {
        self.pending.extend_from_slice(bytes);
        if self.pipe.is_none() && self.pending.len() > DECODED_MAX {
            // Too large to hold: a worker starts writing it now.
            let (pipe, pieces) = sync_channel(PIPE_DEPTH);
            handover.batch.push(Job {
                path: entry.path.clone(),
                mtime,
                data: JobData::Piped(pieces),
            });
            handover.batch.send(handover.jobs)?;
            self.pipe = Some(pipe);
        }
        match &self.pipe {
            Some(pipe) if self.pending.len() >= PIECE => {
                let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(2 * PIECE));
                send_piece(pipe, Piece::Bytes(piece))
            }
            _ => Ok(()),
        }
    }

    /// Hands the rest over, once the data descriptor matched.
    fn finish(
        self,
        entry: &Described,
        mtime: EntryTime,
        handover: &mut Handover<'_>,
    ) -> std::result::Result<(), StepAside> {
        match self.pipe {
            Some(pipe) => {
                if !self.pending.is_empty() {
                    send_piece(&pipe, Piece::Bytes(self.pending))?;
                }
                send_piece(&pipe, Piece::End)
            }
            None => {
                // Sent with its batch (the walker sends a full one).
                handover.batch.push(Job {
                    path: entry.path.clone(),
                    mtime,
                    data: JobData::Decoded(self.pending),
                });
                Ok(())
            }
        }
    }
}

fn send_piece(pipe: &SyncSender<Piece>, piece: Piece) -> std::result::Result<(), StepAside> {
    pipe.send(piece)
        .map_err(|_| "the workers stopped".to_string())
}

/// The length of the data descriptor at the start of `bytes` whose CRC and
/// sizes are those of `streamed`: its signature is optional and its sizes
/// are 4 or 8 bytes, and writers differ, so each layout is tried.
fn descriptor_len(bytes: &[u8; 24], streamed: &Streamed, zip64: bool) -> Option<u64> {
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let widths: [bool; 2] = if zip64 { [true, false] } else { [false, true] };
    for signed in [true, false] {
        if signed && bytes[..4] != DESCRIPTOR_SIGNATURE {
            continue;
        }
        let at = if signed { 4 } else { 0 };
        for wide in widths {
            let (compressed, size, len) = match wide {
                true => (u64_at(at + 4), u64_at(at + 12), at + 20),
                false => (u32_at(at + 4), u32_at(at + 8), at + 12),
            };
            if u32_at(at) == u64::from(streamed.crc)
                && compressed == streamed.compressed
                && size == streamed.size
            {
                return Some(len as u64);
            }
        }
    }
    None
}

/// Signature of a data descriptor.
const DESCRIPTOR_SIGNATURE: [u8; 4] = 0x0807_4b50u32.to_le_bytes();

/// Copies the data of a stored entry with a data descriptor to `emit`, up
/// to the first descriptor that describes the bytes before it (CRC and both
/// sizes); returns their length. A signed descriptor (jszip's
/// `streamFiles`, Python's zipfile on a pipe, Go with `Store`) is taken as
/// it is; one without its signature (older Go) only where a local or central
/// header follows it. Data that happens to hold such a descriptor of its
/// own prefix is cut there, and then the central directory disagrees and
/// streaming steps aside.
fn copy_to_descriptor(
    raw: &mut dyn Read,
    tools: &mut WorkerTools,
    emit: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
) -> std::result::Result<u64, StepAside> {
    /// A signed zip64 descriptor (signature, CRC, two 8-byte sizes), or an
    /// unsigned one and the signature after it.
    const LONGEST: usize = 24;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK + LONGEST);
    let mut crc = crc32fast::Hasher::new();
    let mut length = 0u64;
    let mut ended = false;
    loop {
        while !ended && pending.len() < CHUNK {
            let n = read_some(raw, &mut tools.input).map_err(read_failure)?;
            ended = n == 0;
            pending.extend_from_slice(&tools.input[..n]);
        }
        // Candidates whose whole descriptor is in `pending`.
        let searched = if ended {
            pending.len()
        } else {
            pending.len() - LONGEST
        };
        let mut prefix = crc.clone();
        let mut hashed = 0;
        for at in 0..searched {
            let here = &pending[at..];
            let size = length + at as u64;
            // The sizes first (cheap), the CRC of the prefix only then.
            let fields = |from: usize| here.get(from..).unwrap_or_default();
            let signed = here.starts_with(&DESCRIPTOR_SIGNATURE)
                && [8, 16].iter().any(|&len| sizes_are(fields(8), size, len));
            let unsigned = [8, 16].iter().any(|&len| {
                let next = fields(4 + len).get(..4).map(|b| b.try_into().unwrap());
                sizes_are(fields(4), size, len)
                    && matches!(
                        next.map(u32::from_le_bytes),
                        Some(LOCAL_HEADER | CENTRAL_HEADER)
                    )
            });
            if !signed && !unsigned {
                continue;
            }
            prefix.update(&pending[hashed..at]);
            hashed = at;
            let crc = prefix.clone().finalize().to_le_bytes();
            if (signed && here.get(4..8) == Some(&crc[..]))
                || (unsigned && here.get(..4) == Some(&crc[..]))
            {
                emit(&pending[..at])?;
                return Ok(size);
            }
        }
        if ended {
            return Err("no data descriptor follows a stored entry".into());
        }
        emit(&pending[..searched])?;
        crc.update(&pending[..searched]);
        length += searched as u64;
        pending.drain(..searched);
    }
}

/// Whether `fields` starts with two sizes that are both `size`, 4 bytes
/// each (`len` 8) or 8 in zip64 form (`len` 16).
fn sizes_are(fields: &[u8], size: u64, len: usize) -> bool {
    let bytes = size.to_le_bytes();
    let half = len / 2;
    let fits = half == 8 || size <= u64::from(u32::MAX);
    fits && fields.get(..half) == Some(&bytes[..half])
        && fields.get(half..len) == Some(&bytes[..half])
}

/// Whether an extra-field block holds a zip64 field.
fn has_zip64_field(extra: &[u8]) -> bool {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        if id == 1 {
            return true;
        }
        rest = rest.get(4 + len..).unwrap_or_default();
    }
    false
}

/// Copies `input` to `emit` through `buf`.
pub(crate) fn copy(
    input: &mut (impl Read + ?Sized),
    buf: &mut [u8],
    emit: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
) -> std::result::Result<(), StepAside> {
    loop {
        let n = read_some(input, buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        emit(&buf[..n])?;
    }
}

/// One `read`, retried when interrupted.
fn read_some(input: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The entry's sizes, from the header or, where it says so, its zip64 extra
/// field.
fn sizes(compressed: u32, size: u32, extra: &[u8]) -> std::result::Result<(u64, u64), StepAside> {
    if compressed != u32::MAX && size != u32::MAX {
        return Ok((u64::from(compressed), u64::from(size)));
    }
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len).ok_or("a truncated extra field")?;
        if id == 1 {
            let mut fields = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
            let size = if size == u32::MAX {
                fields.next()
            } else {
                Some(u64::from(size))
            };
            let compressed = if compressed == u32::MAX {
                fields.next()
            } else {
                Some(u64::from(compressed))
            };
            return match (compressed, size) {
                (Some(c), Some(s)) => Ok((c, s)),
                _ => Err("a short zip64 extra field".into()),
            };
        }
        rest = &rest[4 + len..];
    }
    Err("zip64 sizes without a zip64 extra field".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_extracting_threads_yield_to_the_download() {
        let caller = rustix::process::getpriority_process(None).unwrap();
        let (walker, worker) = std::thread::spawn(|| {
            yield_to_the_download();
            let walker = rustix::process::getpriority_process(None).unwrap();
            let worker = std::thread::spawn(|| rustix::process::getpriority_process(None).unwrap());
            (walker, worker.join().unwrap())
        })
        .join()
        .unwrap();
        let lowered = (caller + EXTRACT_NICE).min(19);
        assert_eq!(
            (walker, worker),
            (lowered, lowered),
            "the walker and the workers it starts"
        );
        assert_eq!(
            rustix::process::getpriority_process(None).unwrap(),
            caller,
            "the caller's own thread (in an embedding, the host's) keeps its priority"
        );
    }

    #[test]
    fn zip64_sizes_come_from_the_extra_field() {
        assert_eq!(sizes(10, 20, &[]), Ok((10, 20)));
        let mut extra = vec![1, 0, 16, 0];
        extra.extend_from_slice(&5_000_000_000u64.to_le_bytes()); // size
        extra.extend_from_slice(&4_000_000_000u64.to_le_bytes()); // compressed
        assert_eq!(
            sizes(u32::MAX, u32::MAX, &extra),
            Ok((4_000_000_000, 5_000_000_000))
        );
        assert!(sizes(u32::MAX, 3, &[]).is_err());
        assert!(sizes(u32::MAX, 3, &[1, 0, 9]).is_err());
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn inflate_all(tools: &mut WorkerTools, compressed: &[u8]) -> Result<Vec<u8>, StepAside> {
        let mut out = Vec::new();
        let mut raw: &[u8] = compressed;
        tools.inflate(
            &mut raw,
            compressed.len() as u64,
            u64::MAX,
            &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn one_inflater_serves_entry_after_entry() {
        let big: Vec<u8> = (0..3 * CHUNK as u32)
            .map(|i| (i % 7 + i / 5000) as u8)
            .collect();
        let mut tools = WorkerTools::new();
        assert_eq!(inflate_all(&mut tools, &deflate(&big)).unwrap(), big);
        assert_eq!(
            inflate_all(&mut tools, &deflate(b"small")).unwrap(),
            b"small"
        );
        assert_eq!(inflate_all(&mut tools, &deflate(b"")).unwrap(), b"");

        let whole = deflate(&big);
        let err = inflate_all(&mut tools, &whole[..whole.len() / 2]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = inflate_all(&mut tools, b"\xff\xff\xff\xff").unwrap_err();
        assert!(err.contains("invalid deflate data"), "{err}");
        // A failure leaves nothing behind for the next entry.
        assert_eq!(
            inflate_all(&mut tools, &deflate(b"again")).unwrap(),
            b"again"
        );
    }

    #[test]
    fn the_walkers_window_reads_across_refills() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("download");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 253) as u8).collect();
        fs::write(&path, &data).unwrap();
        let walker = Walker {
            file: Arc::new(File::open(&path).unwrap()),
            growth: Arc::new(Growth::default()),
            staging: dir.path().join("staging"),
            limits: Limits::default(),
            entries: Arc::default(),
            written: AtomicU64::new(0),
            writeback: None,
        };
        walker.growth.advance(data.len() as u64);
        walker.growth.end(GrowthEnd::Complete);
        let mut window = Window::default();
        for (pos, len) in [
            (0, 4),
            (4, 26),
            (65_530, 30),
            (70_000, 65_535),
            (199_990, 10),
        ] {
            let mut buf = vec![0u8; len];
            window.read_at(&walker, pos as u64, &mut buf).unwrap();
            assert_eq!(buf, data[pos..pos + len], "at {pos}+{len}");
        }
        window.read_at(&walker, 100, &mut [0u8; 4]).unwrap();
        assert_eq!(window.small_slice(200, 1000), Some(&data[200..1200]));
        assert_eq!(window.tail(200), &data[200..100 + WINDOW]);
        assert_eq!(window.tail(99), b"", "before the window");
        assert_eq!(window.tail(100 + WINDOW as u64 + 1), b"", "after it");
        assert_eq!(window.small_slice(200, INLINE_MAX + 1), None);
        let err = window
            .read_at(&walker, 199_995, &mut [0u8; 10])
            .unwrap_err();
        assert!(err.contains("ends inside a local header"), "{err}");
    }

    #[test]
    fn stored_data_ends_at_a_descriptor_signed_or_followed_by_a_header() {
        let data = b"stored bytes".to_vec();
        let (crc, len) = (crc32fast::hash(&data).to_le_bytes(), data.len() as u64);
        let narrow = [
            &crc[..],
            &(len as u32).to_le_bytes(),
            &(len as u32).to_le_bytes(),
        ]
        .concat();
        let wide = [&crc[..], &len.to_le_bytes(), &len.to_le_bytes()].concat();
        let local = LOCAL_HEADER.to_le_bytes();
        let central = CENTRAL_HEADER.to_le_bytes();
        let end = |tail: &[&[u8]]| {
            let raw = [&data[..], &tail.concat()].concat();
            let mut out = Vec::new();
            let length = copy_to_descriptor(&mut &raw[..], &mut WorkerTools::new(), &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            });
            length.map(|n| (n, out))
        };
        let found = Ok((len, data.clone()));
        assert_eq!(end(&[&DESCRIPTOR_SIGNATURE, &narrow, b"junk"]), found);
        assert_eq!(end(&[&DESCRIPTOR_SIGNATURE, &wide]), found);
        assert_eq!(end(&[&narrow, &local, b"rest of a header"]), found);
        assert_eq!(end(&[&wide, &central]), found);
        // Unsigned and followed by neither: not an end.
        let none = Err("no data descriptor follows a stored entry".to_string());
        assert_eq!(end(&[&narrow, b"junk"]), none);
        assert_eq!(end(&[&narrow]), none);
    }

    #[test]
    fn decoded_entries_reach_a_worker_whole_or_piped() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        fs::create_dir(&staging).unwrap();
        fs::write(dir.path().join("download"), b"").unwrap();
        let walker = Walker {
            file: Arc::new(File::open(dir.path().join("download")).unwrap()),
            growth: Arc::new(Growth::default()),
            staging: staging.clone(),
            limits: Limits::default(),
            entries: Arc::default(),
            written: AtomicU64::new(0),
            writeback: None,
        };
        let small = b"small".to_vec();
        let large: Vec<u8> = (0..5 * DECODED_MAX as u32).map(|i| i as u8).collect();
        let mtime = entry_time((0x21, 0), &[]);
        let (jobs, queue) = sync_channel::<Vec<Job>>(16);
        let queue = Mutex::new(queue);
        let (stop, failed) = (AtomicBool::new(false), Mutex::new(None));
        let mut batch = Batch::default();
        std::thread::scope(|scope| {
            scope.spawn(|| walker.work(&queue, &stop, &failed));
            let mut handover = Handover {
                batch: &mut batch,
                jobs: &jobs,
            };
            for (name, data) in [("small", &small), ("large", &large), ("empty", &vec![])] {
                let entry = Described {
                    path: PathBuf::from(name),
                    data_start: 0,
                    zip64: false,
                };
                let mut output = Output::default();
                for piece in data.chunks(10_000) {
                    output.push(piece, &entry, mtime, &mut handover).unwrap();
                }
                assert_eq!(output.pipe.is_some(), name == "large", "{name}");
                output.finish(&entry, mtime, &mut handover).unwrap();
            }
            // An entry the walker gives up on halfway: its pipe closes
            // without the end, and the worker does not count it.
            let entry = Described {
                path: PathBuf::from("abandoned"),
                data_start: 0,
                zip64: false,
            };
            let mut output = Output::default();
            output.push(&large, &entry, mtime, &mut handover).unwrap();
            drop(output);
            handover.batch.send(&jobs).unwrap();
            drop(jobs);
        });
        assert_eq!(*failed.lock().unwrap(), None);
        assert_eq!(fs::read(staging.join("small")).unwrap(), small);
        assert_eq!(fs::read(staging.join("large")).unwrap(), large);
        assert_eq!(fs::read(staging.join("empty")).unwrap(), b"");
        assert_eq!(walker.entries.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_failed_piped_write_stops_the_walker_with_the_workers_reason() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("download"), b"").unwrap();
        let walker = Walker {
            file: Arc::new(File::open(dir.path().join("download")).unwrap()),
            growth: Arc::new(Growth::default()),
            // Not created: the worker cannot create the file.
            staging: dir.path().join("missing"),
            limits: Limits::default(),
            entries: Arc::default(),
            written: AtomicU64::new(0),
            writeback: None,
        };
        let large = vec![7u8; 64 * DECODED_MAX];
        let mtime = entry_time((0x21, 0), &[]);
        let (jobs, queue) = sync_channel::<Vec<Job>>(16);
        let queue = Mutex::new(queue);
        let (stop, failed) = (AtomicBool::new(false), Mutex::new(None));
        let mut batch = Batch::default();
        let pushed = std::thread::scope(|scope| {
            scope.spawn(|| walker.work(&queue, &stop, &failed));
            let mut handover = Handover {
                batch: &mut batch,
                jobs: &jobs,
            };
            let entry = Described {
                path: PathBuf::from("big"),
                data_start: 0,
                zip64: false,
            };
            let mut output = Output::default();
            let pushed = large
                .chunks(PIECE)
                .try_for_each(|piece| output.push(piece, &entry, mtime, &mut handover));
            drop((output, jobs));
            pushed
        });
        assert_eq!(pushed, Err("the workers stopped".to_string()));
        let reason = failed.lock().unwrap().clone().unwrap();
        assert!(reason.starts_with("entry \"big\": "), "{reason}");
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(walker.entries.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn walked_entries_are_found_across_chunks() {
        let mut walked = Walked::default();
        let streamed = |n: u32| Streamed {
            name: format!("f{n}").into_bytes(),
            method: CompressionMethod::Stored,
            crc: n,
            compressed: 1,
            size: 1,
            dos_time: (0, 0),
            is_dir: false,
            mtime: EntryTime {
                secs: i64::from(n),
                nanos: 0,
            },
        };
        let count = 2 * WALKED_CHUNK as u32 + 7;
        for n in 0..count {
            walked.push(u64::from(n) * 3 + 1, 0, &streamed(n));
        }
        assert_eq!(walked.len(), count as usize);
        assert_eq!(walked.chunks.len(), 3);
        for n in [0, 1, 4095, 4096, 4097, 8191, 8192, count - 1] {
            let found = walked.get(u64::from(n) * 3 + 1).expect("pushed");
            assert_eq!(found.mtime.secs, i64::from(n));
            let s = streamed(n);
            let digest = walked.digest(&s.name, n, 1, 1, 0, (0, 0), false);
            assert_eq!(found.digest, digest);
        }
        for missing in [0, 2, 3 * u64::from(count) + 1] {
            assert!(walked.get(missing).is_none(), "{missing}");
        }
        assert!(Walked::default().get(1).is_none());
    }

    #[test]
    fn a_growing_reader_waits_for_bytes_and_stops_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello world").unwrap();
        let file = File::open(&path).unwrap();
        let growth = Growth::default();
        let reader = |pos, end| GrowingReader {
            file: &file,
            growth: &growth,
            pos,
            end,
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut buf = Vec::new();
                reader(0, 8).read_to_end(&mut buf).map(|_| buf)
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            growth.advance(11);
            growth.end(GrowthEnd::Complete);
            assert_eq!(waiter.join().unwrap().unwrap(), b"hello wo");
        });
        let abandoned = Growth::default();
        abandoned.end(GrowthEnd::Abandoned);
        let mut r = GrowingReader {
            file: &file,
            growth: &abandoned,
            pos: 0,
            end: 5,
        };
        assert!(r.read(&mut [0u8; 4]).is_err());
    }
}
