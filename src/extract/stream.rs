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
//! Any doubt makes the walker step aside: a layout it does not handle (data
//! descriptors, encryption, compression other than stored or deflate, bytes
//! before the first entry, names not in UTF-8 or ASCII), a name, clash or
//! limit that planning would refuse, a failed entry, or a download that
//! restarted. The caller then removes the staging directory and extracts the
//! complete file the ordinary way, which gives the canonical result or error.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use zip::{CompressionMethod, ZipArchive};

use super::dirs::SeenPaths;
use super::limits::check_path;
use super::plan::{check_link_target, check_name, dos_time_to_system, Kind, Plan, MAX_LINK_TARGET};
use super::{apply_dir_modes, open_and_plan, umask, Extracted, Limits, SharedFile, CHUNK};
use crate::error::{Error, Result};
use crate::fetch::{Growth, GrowthEnd};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;

/// The mode files get while streaming; the real one comes from the central
/// directory at the end.
const STREAM_FILE_MODE: u32 = 0o644;

/// Free space streaming always leaves beside what the download still needs.
const SPACE_RESERVE: u64 = 1 << 20;

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
}

/// Why streaming stepped aside (shown in the report).
type StepAside = String;

/// A streaming extraction running beside a download.
pub(crate) struct Streamer {
    growth: Arc<Growth>,
    thread: Option<JoinHandle<std::result::Result<HashMap<u64, Streamed>, StepAside>>>,
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
    /// Starts extracting the download at `download` (which must exist) into
    /// `staging` (which must not).
    pub(crate) fn start(download: &Path, staging: &Path, limits: &Limits) -> io::Result<Streamer> {
        let file = Arc::new(File::open(download)?);
        let growth = Arc::new(Growth::default());
        let entries = Arc::new(AtomicU64::new(0));
        let walker = Walker {
            file,
            growth: growth.clone(),
            staging: staging.to_path_buf(),
            limits: limits.clone(),
            entries: entries.clone(),
            written: AtomicU64::new(0),
        };
        let thread = std::thread::Builder::new()
            .name("zipdeploy-stream".into())
            .spawn(move || walker.run())?;
        Ok(Streamer {
            growth,
            thread: Some(thread),
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
    /// An `Err` is the canonical verdict on the archive (the same that
    /// extracting the complete file gives).
    pub(crate) fn finish(
        mut self,
        archive: &Path,
        staging: &Path,
        limits: &Limits,
    ) -> Result<Finished> {
        self.growth.end(GrowthEnd::Complete);
        let walked = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(walked))) => walked,
            Some(Ok(Err(reason))) => return Ok(Finished::SteppedAside(reason)),
            Some(Err(_)) | None => {
                return Ok(Finished::SteppedAside("the extractor thread failed".into()))
            }
        };
        let (zip, plan) = open_and_plan(archive, limits)?;
        if let Err(reason) = agrees(&zip, &plan, &walked) {
            return Ok(Finished::SteppedAside(reason));
        }
        complete_tree(&plan, staging)?;
        Ok(Finished::Extracted(Extracted {
            entries: zip.len() as u64,
            files: plan.files.len() as u64,
            dirs: plan.dirs.len() as u64,
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

/// Checks that the central directory describes exactly what was extracted:
/// the same entries at the same offsets, with the same names, sizes, CRCs,
/// methods and times, and the same kinds.
fn agrees(
    zip: &ZipArchive<SharedFile>,
    plan: &Plan,
    walked: &HashMap<u64, Streamed>,
) -> std::result::Result<(), StepAside> {
    if zip.len() != walked.len() {
        return Err(format!(
            "the central directory lists {} entries, the local headers {}",
            zip.len(),
            walked.len()
        ));
    }
    let mut kinds: HashMap<usize, Kind> = HashMap::with_capacity(zip.len());
    kinds.extend(plan.files.iter().map(|f| (f.index, Kind::File)));
    kinds.extend(plan.symlinks.iter().map(|f| (f.index, Kind::Symlink)));
    for index in 0..zip.len() {
        let entry = zip
            .by_index_data(index)
            .map_err(|e| format!("entry #{index}: {e}"))?;
        let Some(local) = walked.get(&entry.header_start()) else {
            return Err(format!("entry #{index} was not seen while streaming"));
        };
        let time = entry.last_modified().map(|t| (t.datepart(), t.timepart()));
        let same = local.name == entry.name_raw()
            && local.crc == entry.crc32()
            && local.compressed == entry.compressed_size()
            && local.size == entry.size()
            && entry.compression() == local.method
            && time.is_none_or(|t| t == local.dos_time);
        // Files and symlinks were streamed as files; directories as directories.
        let kind = kinds.get(&index).copied().unwrap_or(Kind::Dir);
        if !same || local.is_dir != (kind == Kind::Dir) {
            return Err(format!(
                "entry {:?} differs between its local header and the central directory",
                String::from_utf8_lossy(entry.name_raw())
            ));
        }
    }
    Ok(())
}

/// Applies what only the central directory knows: file modes, symlinks
/// (streamed as files holding their target) and directory modes.
fn complete_tree(plan: &Plan, staging: &Path) -> Result<()> {
    let created_mode = STREAM_FILE_MODE & !umask();
    for file in &plan.files {
        if let Some(mode) = file.mode.filter(|m| *m != created_mode) {
            let path = staging.join(&file.path);
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(Error::io("chmod", &path))?;
        }
    }
    for link in &plan.symlinks {
        let path = staging.join(&link.path);
        let mut target = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(MAX_LINK_TARGET + 1).read_to_end(&mut target))
            .map_err(Error::io("read", &path))?;
        let target =
            check_link_target(&link.path, &target).map_err(|reason| Error::UnsafeEntry {
                entry: link.name.clone(),
                reason: format!("symlink {reason}"),
            })?;
        fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        std::os::unix::fs::symlink(&target, &path).map_err(Error::io("symlink", &path))?;
    }
    apply_dir_modes(plan, staging)
}

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
        let available = self
            .growth
            .wait_beyond(self.pos)
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
    data_start: u64,
    /// The entry's compressed data when the walker already read it (small
    /// entries), which spares the worker a `pread`.
    inline: Option<Vec<u8>>,
    streamed: Streamed,
}

/// Small files go to the workers in batches: one wake-up of a worker per
/// batch, not per file. A batch leaves when it is full, with any large file,
/// and before the walker may wait for the download.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    /// Compressed bytes of the jobs (what inline data they may hold).
    bytes: u64,
}

impl Batch {
    fn push(&mut self, job: Job) {
        self.bytes += job.streamed.compressed;
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
    /// Bytes the workers have written.
    written: AtomicU64,
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
    fn run(self) -> std::result::Result<HashMap<u64, Streamed>, StepAside> {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&self.staging)
            .map_err(|e| format!("cannot create the staging directory: {e}"))?;
        let failed: Mutex<Option<StepAside>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        // Batches hold at most a window's worth of small entries, so the
        // queue holds at most about 1 MiB of their data.
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
    ) -> std::result::Result<HashMap<u64, Streamed>, StepAside> {
        let mut window = Window::default();
        let mut batch = Batch::default();
        let mut walked = HashMap::new();
        let mut kinds = SeenPaths::default();
        let mut total_size = 0u64;
        let mut space = SpaceCheck::default();
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
                _ => return Err(format!("no local header at offset {pos}")),
            }
            let mut fixed = [0u8; 26];
            window.read_at(self, pos + 4, &mut fixed)?;
            let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
            let u32_at =
                |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
            let (flags, method) = (u16_at(2), u16_at(4));
            let dos_time = (u16_at(8), u16_at(6));
            let crc = u32_at(10);
            let (name_len, extra_len) = (u64::from(u16_at(22)), u64::from(u16_at(24)));
            if flags & 1 != 0 {
                return Err("an entry is encrypted".into());
            }
            if flags & 8 != 0 {
                return Err("entry sizes follow the data (data descriptors)".into());
            }
            let method = match method {
                0 => CompressionMethod::Stored,
                8 => CompressionMethod::Deflated,
                other => return Err(format!("compression method {other}")),
            };
            let mut name = vec![0u8; name_len as usize];
            window.read_at(self, pos + 30, &mut name)?;
            let mut extra = vec![0u8; extra_len as usize];
            window.read_at(self, pos + 30 + name_len, &mut extra)?;
            let (compressed, size) = sizes(u32_at(14), u32_at(18), &extra)?;
            let data_start = pos + 30 + name_len + extra_len;

            let text = match std::str::from_utf8(&name) {
                Ok(t) if flags & 0x800 != 0 || t.is_ascii() => t,
                _ => return Err("a name is not UTF-8".into()),
            };
            if name.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err("a name has control characters".into());
            }
            let (path, is_dir) = check_name(text).map_err(|r| format!("entry {text:?}: {r}"))?;
            check_path(&name, &self.limits).map_err(|e| e.to_string())?;
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
            self.claim(&mut kinds, &path, is_dir)?;
            let streamed = Streamed {
                name,
                method,
                crc,
                compressed,
                size,
                dos_time,
                is_dir,
            };
            walked.insert(pos, streamed.clone());
            if is_dir {
                self.entries.fetch_add(1, Ordering::Relaxed);
            } else {
                let inline = window
                    .small_slice(data_start, compressed)
                    .map(<[u8]>::to_vec);
                let large = inline.is_none();
                batch.push(Job {
                    path,
                    data_start,
                    inline,
                    streamed,
                });
                if large {
                    batch.send(jobs)?;
                }
            }
            pos = data_start + compressed;
        }
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
                Some(true) => break,
                Some(false) => return Err(clash()),
                None => missing.push(dir),
            }
        }
        // Implied directories count as entries (as planning counts them).
        if (kinds.len() + missing.len() + 1) as u64 > self.limits.max_entries {
            return Err("a limit would be exceeded".into());
        }
        for dir in missing.into_iter().rev() {
            self.mkdir(dir)?;
            kinds.insert(dir, true);
        }
        match kinds.get(path) {
            Some(_) => return Err(clash()),
            None if is_dir => self.mkdir(path)?,
            None => {}
        }
        kinds.insert(path, is_dir);
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
                match self.extract(&job, &mut tools) {
                    Ok(()) => {
                        self.entries.fetch_add(1, Ordering::Relaxed);
                        self.written.fetch_add(job.streamed.size, Ordering::Relaxed);
                    }
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

    fn extract(&self, job: &Job, tools: &mut WorkerTools) -> std::result::Result<(), StepAside> {
        let s = &job.streamed;
        let path = self.staging.join(&job.path);
        let fail = |what: String| format!("entry {:?}: {what}", job.path.display().to_string());
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(STREAM_FILE_MODE)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
        let mut from_file;
        let mut from_window;
        let raw: &mut dyn Read = match &job.inline {
            Some(bytes) => {
                from_window = bytes.as_slice();
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
                return Err(fail("data longer than declared".into()));
            }
            crc.update(bytes);
            out.write_all(bytes).map_err(|e| fail(e.to_string()))
        };
        match s.method {
            CompressionMethod::Deflated => tools
                .inflate(raw, s.compressed, &mut emit)
                .map_err(|e| fail(e.to_string()))?,
            _ => loop {
                let n = read_some(raw, &mut tools.output).map_err(|e| fail(e.to_string()))?;
                if n == 0 {
                    break;
                }
                emit(&tools.output[..n])?;
            },
        }
        if written != s.size || crc.finalize() != s.crc {
            return Err(fail("length or CRC-32 does not match".into()));
        }
        if let Some(mtime) = zip::DateTime::try_from_msdos(s.dos_time.0, s.dos_time.1)
            .ok()
            .and_then(dos_time_to_system)
        {
            let _ = out.set_modified(mtime);
        }
        Ok(())
    }
}

/// One worker's inflater and buffers, made once and reused for every entry:
/// allocating (and zeroing) them per entry cost more than inflating the
/// small files of a typical application.
struct WorkerTools {
    inflater: flate2::Decompress,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl WorkerTools {
    fn new() -> Self {
        WorkerTools {
            inflater: flate2::Decompress::new(false),
            input: vec![0u8; CHUNK],
            output: vec![0u8; CHUNK],
        }
    }

    /// Inflates the `compressed` raw-deflate bytes of `raw`, handing the
    /// output to `emit` piece by piece.
    fn inflate(
        &mut self,
        raw: &mut dyn Read,
        compressed: u64,
        emit: &mut impl FnMut(&[u8]) -> std::result::Result<(), StepAside>,
    ) -> std::result::Result<(), StepAside> {
        self.inflater.reset(false);
        // Small entries read only what they need.
        let want = usize::try_from(compressed).unwrap_or(usize::MAX).min(CHUNK);
        let (mut start, mut end) = (0, 0);
        loop {
            if start == end {
                end = read_some(raw, &mut self.input[..want]).map_err(|e| e.to_string())?;
                start = 0;
            }
            let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress(
                    &self.input[start..end],
                    &mut self.output,
                    flate2::FlushDecompress::None,
                )
                .map_err(|e| format!("invalid deflate data: {e}"))?;
            let used = (self.inflater.total_in() - before_in) as usize;
            let made = (self.inflater.total_out() - before_out) as usize;
            start += used;
            emit(&self.output[..made])?;
            match status {
                flate2::Status::StreamEnd => return Ok(()),
                // No progress: the input ran out before the stream's end.
                _ if used == 0 && made == 0 => return Err("the deflate data is truncated".into()),
                _ => {}
            }
        }
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
        tools.inflate(&mut raw, compressed.len() as u64, &mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        })?;
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
        assert_eq!(window.small_slice(200, INLINE_MAX + 1), None);
        let err = window
            .read_at(&walker, 199_995, &mut [0u8; 10])
            .unwrap_err();
        assert!(err.contains("ends inside a local header"), "{err}");
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
