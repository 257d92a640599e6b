//! Extract stage: archive → fresh staging directory, every entry checked.
//!
//! Extraction happens in two phases. *Planning* reads only the central
//! directory and refuses, before a byte is written, every entry that is
//! unsafe (absolute, `..`, NUL or control characters, backslashes, empty
//! devices and FIFOs, sockets, entries below a symlink or a file),
//! ambiguous (duplicates, `./a` beside `a`, a file and a directory with one
//! name, local/central header mismatch, overlapping entries), unsupported
//! (encryption, exotic compression) or over a limit. A device or FIFO entry
//! that carries data is planned as a regular file; nothing special is ever
//! created.
//! *Writing* then fills files on all cores (each created with `O_EXCL`, so
//! nothing is ever written through a link): large ones first, the others in
//! the order of the archive, in batches, while the calling thread creates
//! the directories just ahead of them. It checks each entry's length and
//! CRC, creates symlinks last (each target checked to stay inside the tree)
//! and finally applies directory modes and times, on two threads.

mod central;
mod dirs;
mod limits;
mod plan;
pub(crate) mod stream;
mod times;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use zip::CompressionMethod;

use crate::error::{Error, Result};
use crate::prealloc;
use crate::progress::{report, Progress, ProgressFn, Stage, HEARTBEAT};
use crate::writeback::Writeback;
use central::{Record, Records};
use dirs::{DirNode, Known, Leaf, PathKey};
use plan::{
    check_entry, check_free_space, check_link_target, data_start, zip_reason, Checked, FileRef,
    Kind, Plan, LARGE_FILE, MAX_LINK_TARGET,
};
use stream::WorkerTools;
use times::{set_file_time, set_path_time};

/// Size of each extraction worker's copy buffer.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Resource limits of extraction. The defaults are generous for real
/// applications (a large `node_modules`) and fatal for bombs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the uncompressed sizes of all entries. Default 8 GiB.
    pub max_total_size: u64,
    /// Number of entries, counting the directories the archive implies
    /// (`a/b/c` implies `a` and `a/b`) and checked against the end of
    /// central directory record before the zip crate parses the records.
    /// Default 1,000,000.
    ///
    /// Memory grows with entries, not with names or depth: about 60 bytes
    /// an entry and no name, 115 while streaming (see `plan.rs`; measured:
    /// a whole deploy of 200,000 tiny entries peaks at 16 MiB of RSS from a
    /// local path, 27 MiB over HTTP).
    pub max_entries: u64,
    /// Uncompressed/compressed ratio of one entry larger than 1 MiB.
    /// Default 2,000 (deflate cannot exceed about 1,032).
    pub max_ratio: u64,
    /// Refuse to start when the filesystem lacks the space or inodes the
    /// archive declares. Default on.
    pub check_free_space: bool,
    /// Components in one entry's path. Default 256: far deeper than real
    /// trees, shallow enough that a refused tree can always be removed.
    pub max_path_depth: u64,
    /// Bytes in one entry's path. Default 4096 (Linux `PATH_MAX`); longer
    /// paths cannot be opened by name at all. (The staging directory's own
    /// path comes on top where a path is opened whole: a path near the limit
    /// may still fail to be created, as a filesystem error.)
    pub max_path_length: u64,
    /// Bytes of extra fields and comments in the central directory, summed
    /// over all entries, each extra field counted 32 bytes more (what the
    /// zip crate spends parsing it). Extraction reads the records one at a
    /// time and keeps none of it, but an archive carrying this much is no
    /// application package. Default 64 MiB (real archives carry 20 to 70
    /// bytes per entry).
    pub max_metadata: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_size: 8 << 30,
            max_entries: 1_000_000,
            max_ratio: 2_000,
            check_free_space: true,
            max_path_depth: 256,
            max_path_length: 4096,
            max_metadata: 64 << 20,
        }
    }
}

/// What extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extracted {
    /// Entries in the archive.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created (including implied parents).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes written into files.
    pub bytes: u64,
}

/// Extracts the ZIP archive at `archive` into `dest`, which must not exist yet
/// (it is created with mode 0755).
///
/// On error `dest` may hold a partial tree; the caller removes it (the
/// pipeline always extracts into a staging directory it owns).
///
/// ```no_run
/// use zipdeploy::extract::{extract_archive, Limits};
/// let done = extract_archive("app.zip".as_ref(), "/tmp/app".as_ref(), &Limits::default(), None)?;
/// println!("{} files, {} bytes", done.files, done.bytes);
/// # Ok::<(), zipdeploy::Error>(())
/// ```
pub fn extract_archive(
    archive: &Path,
    dest: &Path,
    limits: &Limits,
    progress: Option<&mut ProgressFn<'_>>,
) -> Result<Extracted> {
    let file = File::open(archive).map_err(Error::io("open archive", archive))?;
    extract_open_archive(&file, archive, dest, limits, progress, None)
}

/// [`extract_archive`] from the open file `archive` (at `shown`, named in
/// errors): the pipeline extracts the very handle it hashed, never the
/// path again. A durable deploy passes `writeback`, started on each file
/// written.
pub(crate) fn extract_open_archive(
    archive: &File,
    shown: &Path,
    dest: &Path,
    limits: &Limits,
    progress: Option<&mut ProgressFn<'_>>,
    writeback: Option<&Writeback>,
) -> Result<Extracted> {
    let never = AtomicBool::new(false);
    extract_open_archive_unless(archive, shown, dest, limits, progress, writeback, &never)
}

/// [`extract_open_archive`] that another thread can stop by setting
/// `halt`, even in the middle of a large file: it then fails with
/// [`Error::Cancelled`]. A local package hashed alongside is no longer
/// extracted once its digest is known to be wrong (a bomb's gigabytes
/// included).
pub(crate) fn extract_open_archive_unless(
    archive: &File,
    shown: &Path,
    dest: &Path,
    limits: &Limits,
    mut progress: Option<&mut ProgressFn<'_>>,
    writeback: Option<&Writeback>,
    halt: &AtomicBool,
) -> Result<Extracted> {
    let (reader, plan) = open_and_plan(archive, shown, limits)?;
    if limits.check_free_space {
        check_free_space(dest, &plan)?;
    }
    fs::DirBuilder::new()
        .mode(0o755)
        .create(dest)
        .map_err(Error::io("create directory", dest))?;
    let mut extracted = Extracted {
        entries: plan.entries(),
        ..Extracted::default()
    };
    (extracted.dirs, extracted.bytes) =
        write_tree(&reader, &plan, dest, limits, &mut progress, writeback, halt)?;
    extracted.files = plan.files.len() as u64;
    let mut tools = WorkerTools::new();
    let mut record = Record::default();
    let mut link_reader = reader.with_block(SMALL_BLOCK);
    for &central in &plan.symlinks {
        let link = read_planned(&mut link_reader, &mut record, central, &plan, limits)?;
        let target = read_link(&mut link_reader, &record, &link, &mut tools)?;
        let path = dest.join(&link.path);
        std::os::unix::fs::symlink(&target, &path).map_err(Error::io("symlink", &path))?;
        set_path_time(&path, record.mtime()).map_err(Error::io("set the time of", &path))?;
        extracted.symlinks += 1;
    }
    finish_dirs(&plan, &reader, dest, limits)?;
    report(
        &mut progress,
        Progress {
            stage: Stage::Extract,
            bytes: extracted.bytes,
            total_bytes: Some(plan.total_size),
            entries: extracted.entries,
            total_entries: Some(extracted.entries),
        },
    )?;
    Ok(extracted)
}

/// Blocks of a reader that jumps from entry to entry: one read serves a
/// central record, or a small entry's data.
const SMALL_BLOCK: usize = 4 * 1024;

/// The error for an entry that is not what planning saw: the archive
/// changed on disk while it was extracted.
fn changed(name: &str) -> Error {
    Error::CorruptArchive(format!(
        "entry {name:?}: the archive changed while it was extracted"
    ))
}

/// Calls `visit` with every directory of every entry (the directories it
/// is in, and itself if it is one), parents first, re-reading the central
/// directory: each entry is checked again, and a directory planning did
/// not see means the archive changed. An entry in the same directory as
/// the one before it (as neighbours in an archive mostly are) has its
/// parents visited already: only its own path, if it is a directory,
/// remains. `entry_done` is called with each record once its directories
/// were visited.
fn each_dir(
    plan: &Plan,
    records: Records,
    reader: &SharedFile,
    limits: &Limits,
    mut visit: impl FnMut(&DirNode, &Path, PathKey) -> Result<()>,
    mut entry_done: impl FnMut(&Record),
) -> Result<()> {
    let mut keys: Vec<PathKey> = Vec::new();
    let mut last_parent = None;
    plan.directory
        .each_of(records, &mut reader.clone(), |_, record, _| -> Result<()> {
            let checked = check_entry(record, limits)?;
            keys.clear();
            let _ = plan.paths.keys.each_prefix(&checked.path, |_, key| {
                keys.push(key);
                Ok::<(), ()>(())
            });
            let parents = keys.len().saturating_sub(1);
            let parent = parents.checked_sub(1).map(|i| keys[i]);
            let first = match parent.is_some() && parent == last_parent {
                true => parents,
                false => 0,
            };
            last_parent = parent;
            let wanted = match checked.kind {
                Kind::Dir => keys.len(),
                _ => parents,
            };
            for (level, &key) in keys.iter().enumerate().take(wanted).skip(first) {
                let dir = plan.paths.dir(key).ok_or_else(|| changed(&checked.name))?;
                let mut path = checked.path.ancestors().skip(keys.len() - 1 - level);
                visit(dir, path.next().expect("a path per key"), key)?;
            }
            entry_done(record);
            Ok(())
        })
}

/// Gives every directory its mode and time, once nothing more is created
/// in it. Modes: those the archive says, never less than owner rwx and
/// with the search bit wherever the read bit is (a directory stored 0644
/// becomes 0755: a web server running as another user can enter it);
/// directories that already have their mode are left alone. Times: see
/// `times.rs`. Two threads share the work in a large archive: nothing is
/// created any more, and each directory is done once.
pub(crate) fn finish_dirs(
    plan: &Plan,
    reader: &SharedFile,
    dest: &Path,
    limits: &Limits,
) -> Result<()> {
    let created = 0o755 & !umask();
    let finish_dir = |dir: &DirNode, prefix: &Path, key| {
        if !plan.paths.mark_timed(key) {
            return Ok(());
        }
        let path = dest.join(prefix);
        let mode = dir.mode().map(dir_mode).filter(|m| *m != created);
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(Error::io("chmod", &path))?;
        }
        if let Some(time) = dir.time() {
            set_path_time(&path, time).map_err(Error::io("set the time of", &path))?;
        }
        Ok(())
    };
    let finish = |records| each_dir(plan, records, reader, limits, finish_dir, |_| {});
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match plan.directory.halves() {
        Some([first, second]) if cores > 1 && plan.entries() >= SPLIT_ENTRIES => {
            std::thread::scope(|scope| {
                let other = scope.spawn(|| finish(second));
                let mine = finish(first);
                let theirs = other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                mine.and(theirs)
            })
        }
        _ => finish(plan.directory.all()),
    }
}

/// Entries from which directories are finished on two threads.
const SPLIT_ENTRIES: u64 = 4096;

/// The mode a directory stored with `mode` gets: owner rwx, and x wherever r.
pub(crate) fn dir_mode(mode: u32) -> u32 {
    mode | 0o700 | ((mode & 0o444) >> 2)
}

/// The process umask, read without changing it (Linux reports it in
/// `/proc/self/status`); 022 where that is unavailable.
pub(crate) fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// A file read with `pread`, so clones share the descriptor but not the
/// position: each pass and each extraction thread gets its own cursor into
/// one archive.
///
/// Small reads are served from blocks read ahead: the central directory is
/// read record by record, field by field. Two blocks, the one used last
/// kept, so that reading the central directory and the local headers in
/// turn (planning checks each record against its local header) does not
/// read each block again and again. Reads of at least [`DIRECT_READ`]
/// bytes go straight to the file.
#[derive(Clone)]
pub(crate) struct SharedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
    /// Bytes read ahead: blocks of `block_size` bytes, the one used last
    /// first.
    blocks: Vec<Block>,
    block_size: usize,
}

#[derive(Clone, Default)]
struct Block {
    start: u64,
    bytes: Vec<u8>,
}

/// Bytes read ahead for small reads of a pass over the central directory.
const READ_AHEAD: usize = 64 * 1024;

/// Reads at least this long bypass the read-ahead blocks.
const DIRECT_READ: usize = 8 * 1024;

impl SharedFile {
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(SharedFile {
            file: Arc::new(file),
            len,
            pos: 0,
            blocks: Vec::new(),
            block_size: READ_AHEAD,
        })
    }

    /// A reader of the same file with blocks of `size` bytes (0: none).
    pub(crate) fn with_block(&self, size: usize) -> Self {
        SharedFile {
            blocks: Vec::new(),
            block_size: size,
            ..self.clone()
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The index of the block holding the current position, if any.
    fn ahead(&self) -> Option<usize> {
        self.blocks.iter().position(|b| {
            self.pos
                .checked_sub(b.start)
                .is_some_and(|skip| skip < b.bytes.len() as u64)
        })
    }

    /// Reads a block at the current position, in place of the one used
    /// least recently; it becomes the first.
    fn read_block(&mut self) -> io::Result<()> {
        let mut block = match self.blocks.len() {
            0 | 1 => Block::default(),
            _ => self.blocks.pop().unwrap_or_default(),
        };
        block.bytes.resize(self.block_size, 0);
        block.start = self.pos;
        let n = self.file.read_at(&mut block.bytes, self.pos)?;
        block.bytes.truncate(n);
        self.blocks.insert(0, block);
        Ok(())
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let index = match self.ahead() {
            Some(i) => i,
            None if buf.len() >= DIRECT_READ || self.block_size == 0 => {
                let n = self.file.read_at(buf, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            None => {
                self.read_block()?;
                match self.ahead() {
                    Some(i) => i,
                    None => return Ok(0), // at the end
                }
            }
        };
        if index != 0 {
            self.blocks.swap(0, index);
        }
        let block = &self.blocks[0];
        let skip = (self.pos - block.start) as usize;
        let ahead = &block.bytes[skip..];
        let n = ahead.len().min(buf.len());
        buf[..n].copy_from_slice(&ahead[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before start of file")
        })?;
        Ok(self.pos)
    }
}

/// Opens the open archive `file` (at `shown`, named in errors) as a ZIP and
/// plans it: every check that needs only the central directory and the
/// local headers. Returns a reader of the archive for the later passes.
pub(crate) fn open_and_plan(
    file: &File,
    shown: &Path,
    limits: &Limits,
) -> Result<(SharedFile, Plan)> {
    let mut reader = file
        .try_clone()
        .and_then(SharedFile::new)
        .map_err(Error::io("open archive", shown))?;
    let mut head = [0u8; 512];
    let n = reader.file().read_at(&mut head, 0).unwrap_or(0);
    if n == 0 {
        return Err(Error::NotZip("the package is empty (0 bytes)".into()));
    }
    // Before anything is parsed: the entry count and the metadata.
    limits::check_central_directory(&mut reader, limits)?;
    let plan = Plan::new(&reader, &head[..n], limits)?;
    Ok((reader.with_block(READ_AHEAD), plan))
}

/// Small files a worker claims at a time.
const FILE_BATCH: usize = 64;

/// Counters the file workers share.
struct Shared<'a> {
    reader: &'a SharedFile,
    plan: &'a Plan,
    limits: &'a Limits,
    dest: &'a Path,
    next: AtomicUsize,
    done: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
    /// Set by the caller to stop extraction (see
    /// [`extract_open_archive_unless`]).
    halt: &'a AtomicBool,
    error: Mutex<Option<Error>>,
    /// The process umask, to skip `fchmod` where creation gave the exact mode.
    umask: u32,
    /// For a durable deploy: starts the writeback of the files written.
    writeback: Option<&'a Writeback>,
    dirs: DirsReady,
    /// The writers at work beside the thread that reports progress.
    helpers: Helpers,
}

/// What the thread reporting progress tells: where `Shared` stands, with
/// the bytes of the file it is writing so far.
type Tell<'t, 'a> = &'t mut dyn FnMut(&Shared<'a>, u64);

/// How many helper writers are still at work: the thread reporting
/// progress, done with its own share, keeps telling until they are (and a
/// cancel stops them).
#[derive(Default)]
struct Helpers {
    running: Mutex<usize>,
    ended: Condvar,
}

/// A helper at work: counted until dropped (a panic included).
struct Helping<'h>(&'h Helpers);

impl Helpers {
    fn start(&self) -> Helping<'_> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Helping(self)
    }

    /// Waits at most `timeout` for every helper to end; whether they have.
    fn wait(&self, timeout: Duration) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let (running, _) = self
            .ended
            .wait_timeout_while(running, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *running == 0
    }
}

impl Drop for Helping<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.ended.notify_all();
    }
}

/// How far the creation of directories has gone through the central
/// directory: a worker waits on it before it writes a batch of small files.
#[derive(Default)]
struct DirsReady {
    /// Every record before this offset has its directories.
    upto: Mutex<u64>,
    moved: Condvar,
}

impl DirsReady {
    fn advance(&self, upto: u64) {
        *self.upto.lock().unwrap_or_else(|p| p.into_inner()) = upto;
        self.moved.notify_all();
    }

    /// Wakes the waiting workers, to see `stop`.
    fn wake(&self) {
        let _upto = self.upto.lock().unwrap_or_else(|p| p.into_inner());
        self.moved.notify_all();
    }

    /// Waits until the record at `central` has its directories, or `stop`.
    fn wait_for(&self, central: u64, stop: &AtomicBool) {
        let mut upto = self.upto.lock().unwrap_or_else(|p| p.into_inner());
        while *upto <= central && !stop.load(Ordering::Relaxed) {
            upto = self.moved.wait(upto).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Lets every worker through when dropped.
struct AllReady<'a>(&'a DirsReady);

impl Drop for AllReady<'_> {
    fn drop(&mut self) {
        self.0.advance(u64::MAX);
    }
}

/// Records between two advances of [`DirsReady`].
const DIRS_STEP: usize = 256;

/// One worker's reader, decoder and record, reused for every file.
struct Worker {
    reader: SharedFile,
    tools: WorkerTools,
    record: Record,
}

impl<'a> Shared<'a> {
    /// Extracts files until none are left or someone failed. The thread
    /// reporting progress passes `tell`, called after every file and every
    /// [`HEARTBEAT`] while one is written (so a cancel stops a large file).
    fn work(&self, mut tell: Option<Tell<'_, 'a>>) {
        let mut worker = Worker {
            // A batch's records, and its files' data, lie side by side.
            reader: self.reader.with_block(READ_AHEAD),
            tools: WorkerTools::new(),
            record: Record::default(),
        };
        loop {
            let batch = self.claim();
            if batch.is_empty() {
                return;
            }
            let small = batch.iter().filter(|f| f.size < LARGE_FILE);
            if let Some(last) = small.map(|f| f.central).max() {
                self.dirs.wait_for(last, &self.stop);
            }
            for file in batch {
                if self.stopping() {
                    return;
                }
                match self.write_file(&mut worker, file, &mut tell) {
                    Ok(n) => {
                        self.bytes.fetch_add(n, Ordering::Relaxed);
                        self.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => self.fail(e),
                }
                if let Some(tell) = tell.as_mut() {
                    tell(self, 0);
                }
            }
        }
    }

    /// The next files to write: one large file, or a batch of small ones
    /// (neighbours in the archive, in one directory as a rule, so two
    /// workers seldom create files in the same directory at once).
    fn claim(&self) -> &[FileRef] {
        let files = &self.plan.files;
        let step = match files.get(self.next.load(Ordering::Relaxed)) {
            Some(file) if file.size < LARGE_FILE => FILE_BATCH,
            _ => 1,
        };
        let from = self
            .next
            .fetch_add(step, Ordering::Relaxed)
            .min(files.len());
        &files[from..(from + step).min(files.len())]
    }

    /// Whether to stop writing, between files or in the middle of one:
    /// a file failed, or the caller set `halt` (which fails extraction as
    /// cancelled).
    fn stopping(&self) -> bool {
        if self.halt.load(Ordering::Relaxed) {
            self.fail(Error::Cancelled);
        }
        self.stop.load(Ordering::Relaxed)
    }

    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
        drop(slot);
        self.dirs.wake();
    }

    /// Creates the directories of the large files, which the workers
    /// write first; returns how many.
    fn create_large_files_dirs(&self) -> Result<u64> {
        let mut created = 0;
        let mut reader = self.reader.with_block(SMALL_BLOCK);
        let mut record = Record::default();
        for file in self.plan.files.iter().take_while(|f| f.size >= LARGE_FILE) {
            let checked = read_planned(
                &mut reader,
                &mut record,
                file.central,
                self.plan,
                self.limits,
            )?;
            let parent = checked.path.parent().unwrap_or(Path::new(""));
            self.plan.paths.keys.each_prefix(parent, |prefix, key| {
                if self.plan.paths.dir(key).is_none() {
                    return Err(changed(&checked.name));
                }
                created += u64::from(self.create_dir(prefix, key)?);
                Ok(())
            })?;
        }
        Ok(created)
    }

    /// Creates every directory of the plan not created yet, in the order
    /// of the central directory, while the workers write files: each batch
    /// of small files is written as soon as its directories exist. Returns
    /// how many it created.
    fn create_dirs(&self) -> Result<u64> {
        // However this ends (a panic included), no worker waits any more.
        let _all = AllReady(&self.dirs);
        let mut created = 0;
        let mut entries = 0;
        let visit = |_: &DirNode, prefix: &Path, key| {
            created += u64::from(self.create_dir(prefix, key)?);
            Ok(())
        };
        let entry_done = |record: &Record| {
            entries += 1;
            if entries % DIRS_STEP == 0 {
                self.dirs.advance(record.next);
            }
        };
        let records = self.plan.directory.all();
        let done = each_dir(
            self.plan,
            records,
            self.reader,
            self.limits,
            visit,
            entry_done,
        );
        done.map(|()| created)
    }

    /// Creates the directory `prefix` of the plan (at `key`) with mode 0755
    /// (less the umask) unless it was; returns whether it did.
    fn create_dir(&self, prefix: &Path, key: PathKey) -> Result<bool> {
        if self.stop.load(Ordering::Relaxed) {
            // Another thread failed: the error it gave is the one reported.
            return Err(Error::Cancelled);
        }
        if !self.plan.paths.mark_created(key) {
            return Ok(false);
        }
        let path = self.dest.join(prefix);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(Error::io("create directory", &path))?;
        Ok(true)
    }

    /// Writes one file: exact length and CRC, mode and mtime. Calls `tell`
    /// (when given) every [`HEARTBEAT`] meanwhile.
    fn write_file(
        &self,
        worker: &mut Worker,
        file: &FileRef,
        tell: &mut Option<Tell<'_, 'a>>,
    ) -> Result<u64> {
        let Worker {
            reader,
            tools,
            record,
        } = worker;
        let checked = read_planned(reader, record, file.central, self.plan, self.limits)?;
        if checked.kind != Kind::File || record.size != file.size {
            return Err(changed(&checked.name));
        }
        let path = self.dest.join(&checked.path);
        // create_new = O_CREAT|O_EXCL: fails on any existing path, links included.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(checked.mode.unwrap_or(0o644))
            .open(&path)
            .map_err(Error::io("create", &path))?;
        // A large file's blocks are reserved at once, as streaming does (not
        // for a durable deploy: see `stream`). Planning checked its size
        // against the limits and the free space.
        if self.writeback.is_none() {
            prealloc::reserve(&out, 0, file.size);
        }
        let data = data_start(reader, record.header)
            .map_err(|e| Error::CorruptArchive(format!("entry {:?}: {e}", checked.name)))?;
        let mut so_far = 0u64;
        let mut told = Instant::now();
        let written = read_data(reader, record, data, tools, &mut |b| {
            if let Some(tell) = tell.as_mut().filter(|_| told.elapsed() >= HEARTBEAT) {
                tell(self, so_far);
                told = Instant::now();
            }
            if self.stopping() {
                return Err(io::Error::other("extraction stopped"));
            }
            out.write_all(b)?;
            so_far += b.len() as u64;
            if let Some(w) = self.writeback {
                w.wrote(&out, so_far, b.len() as u64);
            }
            Ok(())
        })
        .map_err(|e| e.into_error(&checked.name, &path))?;
        if let Some(mode) = checked.mode.filter(|m| m & self.umask != 0) {
            // Exact bits where the umask took some at creation (setuid, setgid
            // and sticky were already dropped by planning).
            out.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(Error::io("chmod", &path))?;
        }
        set_file_time(&out, record.mtime()).map_err(Error::io("set the time of", &path))?;
        if let Some(w) = self.writeback {
            w.finished(&out, written);
        }
        Ok(written)
    }
}

/// Creates every planned directory and writes every planned file, on as
/// many threads as there are cores: the calling thread creates the
/// directories (parents first, each once) while the others already write
/// the files whose directories exist, then writes files too (and alone
/// reports progress). Returns the directories created and the bytes
/// written. Setting `halt` stops the writers, mid-file too.
fn write_tree(
    reader: &SharedFile,
    plan: &Plan,
    dest: &Path,
    limits: &Limits,
    progress: &mut Option<&mut ProgressFn<'_>>,
    writeback: Option<&Writeback>,
    halt: &AtomicBool,
) -> Result<(u64, u64)> {
    let shared = Shared {
        reader,
        plan,
        limits,
        dest,
        next: AtomicUsize::new(0),
        done: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        halt,
        error: Mutex::new(None),
        umask: umask(),
        writeback,
        dirs: DirsReady::default(),
        helpers: Helpers::default(),
    };
    // As many writers as cores beside the thread creating directories (the
    // streaming walker's layout): a writer waiting for the journal or for a
    // directory's lock leaves its core to another.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = if plan.files.len() < 32 {
        0
    } else {
        cores.min(8)
    };
    let total_entries = Some(plan.entries());
    let mut dirs = shared.create_large_files_dirs()?;
    let mut tell = |shared: &Shared<'_>, writing: u64| {
        let p = Progress {
            stage: Stage::Extract,
            bytes: shared.bytes.load(Ordering::Relaxed) + writing,
            total_bytes: Some(plan.total_size),
            entries: shared.done.load(Ordering::Relaxed),
            total_entries,
        };
        if let Err(e) = report(progress, p) {
            shared.fail(e);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            let helping = shared.helpers.start();
            scope.spawn(|| {
                let _helping = helping;
                shared.work(None);
            });
        }
        match shared.create_dirs() {
            Ok(n) => dirs += n,
            Err(e) => shared.fail(e),
        }
        shared.work(Some(&mut tell));
        // The helpers may still be writing large files.
        while !shared.helpers.wait(HEARTBEAT) && !shared.stop.load(Ordering::Relaxed) {
            tell(&shared, 0);
        }
    });
    match shared.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok((dirs, shared.bytes.into_inner())),
    }
}

/// Reads the central record at `central` (its local header offset made
/// absolute) and checks it again: it must be an entry planning saw.
pub(crate) fn read_planned(
    reader: &mut SharedFile,
    record: &mut Record,
    central: u64,
    plan: &Plan,
    limits: &Limits,
) -> Result<Checked> {
    record
        .read(reader, central)
        .map_err(|e| Error::CorruptArchive(format!("central directory record: {e}")))?;
    record.header = record.header.wrapping_add(plan.directory.archive_offset);
    let checked = check_entry(record, limits)?;
    let expected = match checked.kind {
        Kind::File => Known::Leaf(Leaf::File),
        Kind::Symlink => Known::Leaf(Leaf::Symlink),
        Kind::Dir => Known::ListedDir,
    };
    let key = plan.paths.keys.key(&checked.path);
    if key.map(|k| plan.paths.known(k)) != Some(Ok(expected)) {
        return Err(changed(&checked.name));
    }
    Ok(checked)
}

/// Why an entry's data could not be extracted.
pub(crate) enum DataError {
    /// The archive is at fault (shown after the entry's name).
    Corrupt(String),
    /// Writing it failed.
    Write(io::Error),
}

impl DataError {
    pub(crate) fn into_error(self, name: &str, path: &Path) -> Error {
        match self {
            DataError::Corrupt(why) => Error::CorruptArchive(format!("entry {name:?}: {why}")),
            DataError::Write(e) => Error::io("write", path)(e),
        }
    }
}

/// Decodes the data of the entry `record` (starting at `data`) into `emit`,
/// checked against the declared size and CRC-32; returns its length.
/// Stored and deflated entries are decoded here (with the worker's one
/// inflater), the others by the zip crate.
pub(crate) fn read_data(
    reader: &mut SharedFile,
    record: &Record,
    data: u64,
    tools: &mut WorkerTools,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> std::result::Result<u64, DataError> {
    let size = record.size;
    let mut crc = crc32fast::Hasher::new();
    let mut written = 0u64;
    let mut failed_write = None;
    let mut sink = |bytes: &[u8]| -> std::result::Result<(), String> {
        written += bytes.len() as u64;
        if written > size {
            return Err(format!("data is longer than the declared {size} bytes"));
        }
        crc.update(bytes);
        emit(bytes).map_err(|e| {
            failed_write = Some(e);
            String::new()
        })
    };
    let seek = |reader: &mut SharedFile, at: u64| {
        reader
            .seek(SeekFrom::Start(at))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let decoded = match plan::method_of(record.method) {
        CompressionMethod::Stored => seek(reader, data).and_then(|()| {
            let mut raw = (&mut *reader).take(record.compressed);
            stream::copy(&mut raw, &mut tools.output, &mut sink)?;
            match raw.limit() {
                0 => Ok(()),
                _ => Err("data ends early (truncated archive)".to_string()),
            }
        }),
        CompressionMethod::Deflated => seek(reader, data).and_then(|()| {
            let mut raw = (&mut *reader).take(record.compressed);
            tools
                .inflate(&mut raw, record.compressed, u64::MAX, &mut sink)
                .map_err(|e| match e.contains("truncated") {
                    true => "data ends early (truncated archive)".to_string(),
                    false => e,
                })
        }),
        // bzip2, LZMA, Deflate64: the zip crate's decoders, from the local
        // header on, with the central directory's sizes and CRC.
        _ => seek(reader, record.header).and_then(|()| {
            let options = zip::read::ZipReadOptions::new()
                .override_compressed_size(record.compressed)
                .override_uncompressed_size(size)
                .override_crc(record.crc);
            let mut entry = zip::read::read_zipfile_from_stream_with_options(reader, options)
                .map_err(|e| zip_reason(&e))?
                .ok_or_else(|| "no local header".to_string())?;
            let buf = &mut tools.output;
            loop {
                let n = match entry.read(buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_reason(&e, size)),
                };
                sink(&buf[..n])?;
            }
        }),
    };
    if let Some(e) = failed_write {
        return Err(DataError::Write(e));
    }
    decoded.map_err(DataError::Corrupt)?;
    if written != size {
        return Err(DataError::Corrupt(format!(
            "data is shorter than declared ({written} of {size} bytes)"
        )));
    }
    if crc.finalize() != record.crc {
        return Err(DataError::Corrupt(
            "CRC-32 mismatch (data corrupted)".into(),
        ));
    }
    Ok(written)
}

fn read_reason(e: &io::Error, declared: u64) -> String {
    let text = e.to_string().to_lowercase();
    if text.contains("checksum") {
        "CRC-32 mismatch (data corrupted)".into()
    } else if text.contains("larger than its declared") {
        format!("data is longer than the declared {declared} bytes")
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        "data ends early (truncated archive)".into()
    } else {
        e.to_string()
    }
}

/// A symlink's target, read and checked: relative, inside the tree.
pub(crate) fn read_link(
    reader: &mut SharedFile,
    record: &Record,
    link: &Checked,
    tools: &mut WorkerTools,
) -> Result<PathBuf> {
    let corrupt = |why: String| Error::CorruptArchive(format!("entry {:?}: {why}", link.name));
    let data = data_start(reader, record.header).map_err(|e| corrupt(e.to_string()))?;
    let mut target = Vec::new();
    read_data(reader, record, data, tools, &mut |b| {
        target.extend_from_slice(b);
        Ok(())
    })
    .map_err(|e| e.into_error(&link.name, &link.path))?;
    if target.len() as u64 > MAX_LINK_TARGET {
        return Err(corrupt("symlink target longer than 4096 bytes".into()));
    }
    check_link_target(&link.path, &target).map_err(|reason| Error::UnsafeEntry {
        entry: link.name.clone(),
        reason: format!("symlink {reason}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// `files` small files, their directories taken in turn
    /// (`d{i % 40}/sub/`), each `d..` listed with mode 0750, half before its
    /// files and half after them; the file `d07/sub/f87` stored, to be
    /// corrupted.
    fn interleaved_package(files: usize) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let time = zip::DateTime::from_date_and_time(2021, 3, 4, 5, 6, 8).unwrap();
        let file = zip::write::SimpleFileOptions::default().last_modified_time(time);
        let dir = file.unix_permissions(0o750);
        for d in 0..20 {
            w.add_directory(format!("d{d:02}/"), dir).unwrap();
        }
        for i in 0..files {
            let options = match i {
                87 => file.compression_method(zip::CompressionMethod::Stored),
                _ => file,
            };
            w.start_file(format!("d{:02}/sub/f{i}", i % 40), options)
                .unwrap();
            w.write_all(format!("file {i}\n").as_bytes()).unwrap();
        }
        for d in 20..40 {
            w.add_directory(format!("d{d:02}/"), dir).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn files_in_directories_taken_in_turn_get_their_bytes_and_directories_their_modes_and_times() {
        // Enough entries that two threads finish the directories.
        let files = SPLIT_ENTRIES as usize + 100;
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("app.zip");
        fs::write(&archive, interleaved_package(files)).unwrap();
        let dest = tmp.path().join("app");
        let done = extract_archive(&archive, &dest, &Limits::default(), None).unwrap();
        assert_eq!((done.files, done.dirs), (files as u64, 80));
        for i in 0..files {
            let path = dest.join(format!("d{:02}/sub/f{i}", i % 40));
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("file {i}\n"));
        }
        let time = fs::metadata(dest.join("d00/sub/f0")).unwrap().mtime();
        for d in 0..40 {
            let listed = fs::metadata(dest.join(format!("d{d:02}"))).unwrap();
            assert_eq!(listed.mode() & 0o7777, 0o750, "d{d:02}");
            assert_eq!(listed.mtime(), time, "d{d:02}");
            let implied = fs::metadata(dest.join(format!("d{d:02}/sub"))).unwrap();
            assert_eq!(implied.mtime(), time, "d{d:02}/sub: the newest below");
        }
    }

    #[test]
    fn a_file_failing_while_directories_are_created_is_the_error_reported() {
        let mut bytes = interleaved_package(400);
        let at = bytes.windows(8).position(|w| w == b"file 87\n").unwrap();
        bytes[at] = b'F';
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("app.zip");
        fs::write(&archive, bytes).unwrap();
        let e = extract_archive(&archive, &tmp.path().join("app"), &Limits::default(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("d07/sub/f87") && e.contains("CRC"), "{e}");
    }

    #[test]
    fn shared_file_reads_the_same_bytes_whatever_its_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 17 % 251) as u8).collect();
        fs::write(&path, &data).unwrap();
        let file = SharedFile::new(File::open(&path).unwrap()).unwrap();
        for block in [READ_AHEAD, SMALL_BLOCK, 0] {
            let mut file = file.with_block(block);
            // Small and large reads, forwards, backwards, across block
            // ends, and in turn at two places (two blocks).
            for (pos, len) in [
                (0, 4),
                (4, 26),
                (30, 100),
                (65_530, 12),
                (10, 40_000),
                (299_990, 10),
                (100_000, 8 * 1024),
                (70_000, 3),
                (40, 3),
                (70_010, 3),
                (50, 3),
            ] {
                file.seek(SeekFrom::Start(pos)).unwrap();
                let mut buf = vec![0u8; len];
                file.read_exact(&mut buf).unwrap();
                assert_eq!(buf, data[pos as usize..pos as usize + len], "{pos}+{len}");
            }
            assert!(file.blocks.len() <= 2);
            assert_eq!(file.blocks.is_empty(), block == 0);
            file.seek(SeekFrom::Start(300_000)).unwrap();
            assert_eq!(file.read(&mut [0u8; 4]).unwrap(), 0, "at the end");
            file.seek(SeekFrom::End(-2)).unwrap();
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, data[data.len() - 2..]);
        }
        // A clone keeps its own position.
        let mut other = file.clone();
        let mut head = [0u8; 3];
        other.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..3]);
    }
}
