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
//! *Writing* then creates directories, fills files on all cores (each created
//! with `O_EXCL`, so nothing is ever written through a link), checks each
//! entry's length and CRC, creates symlinks last (each target checked to stay
//! inside the tree) and finally applies directory modes and times.

mod dirs;
mod limits;
mod plan;
pub(crate) mod stream;
mod times;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use zip::ZipArchive;

use crate::error::{Error, Result};
use crate::progress::{report, Progress, ProgressFn, Stage};
use crate::writeback::Writeback;
use plan::{check_free_space, check_link_target, zip_reason, Plan, Planned, MAX_LINK_TARGET};
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
    /// Memory grows with entries, not with depth: the parsed central
    /// directory and the plan take about 0.5 KB an entry (measured: 200,000
    /// tiny entries peak at 106 MB RSS, 8.5 MB of it the process; 2,000
    /// entries 255 directories deep with 4 KB names at 49 MB, where storing
    /// every ancestor's path took 1.1 GB).
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
    /// zip crate spends parsing it). The zip crate keeps all of it in memory
    /// while extracting; zipdeploy uses none of the comments. Default
    /// 64 MiB (real archives carry 20 to 70 bytes per entry).
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
    mut progress: Option<&mut ProgressFn<'_>>,
    writeback: Option<&Writeback>,
) -> Result<Extracted> {
    let (mut zip, plan) = open_and_plan(archive, shown, limits)?;
    if limits.check_free_space {
        check_free_space(dest, &plan)?;
    }
    fs::DirBuilder::new()
        .mode(0o755)
        .create(dest)
        .map_err(Error::io("create directory", dest))?;
    let mut extracted = Extracted {
        entries: zip.len() as u64,
        ..Extracted::default()
    };
    for dir in &plan.dirs {
        let path = dest.join(dir);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(Error::io("create directory", &path))?;
        extracted.dirs += 1;
    }
    extracted.bytes = write_files(&zip, &plan, dest, &mut progress, writeback)?;
    extracted.files = plan.files.len() as u64;
    for link in &plan.symlinks {
        write_symlink(&mut zip, link, dest)?;
        extracted.symlinks += 1;
    }
    apply_dir_modes(&plan, dest)?;
    apply_dir_times(&plan, dest)?;
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

/// Gives directories the modes the archive says, never less than owner rwx
/// and with the search bit wherever the read bit is (a directory stored
/// 0644 becomes 0755: a web server running as another user can enter it),
/// deepest first so a read-only parent never blocks its children.
/// Directories were created with 0755 less the umask; those that already
/// have their mode are left alone (one `chmod` fewer per directory).
pub(crate) fn apply_dir_modes(plan: &Plan, dest: &Path) -> Result<()> {
    let created = 0o755 & !umask();
    for (dir, mode) in plan.dir_modes.iter().rev() {
        let mode = dir_mode(*mode);
        if mode == created {
            continue;
        }
        let path = dest.join(dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(Error::io("chmod", &path))?;
    }
    Ok(())
}

/// The mode a directory stored with `mode` gets: owner rwx, and x wherever r.
pub(crate) fn dir_mode(mode: u32) -> u32 {
    mode | 0o700 | ((mode & 0o444) >> 2)
}

/// Gives every directory its time (see `times.rs`), once nothing more is
/// created in it.
pub(crate) fn apply_dir_times(plan: &Plan, dest: &Path) -> Result<()> {
    for dir in &plan.dirs {
        let Some(time) = plan.dir_times.time_of(&dir) else {
            continue;
        };
        let path = dest.join(dir);
        set_path_time(&path, time).map_err(Error::io("set the time of", &path))?;
    }
    Ok(())
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
/// position: each extraction thread gets its own cursor into one archive.
///
/// While the archive is opened and planned, small reads are served from a
/// block read ahead: the zip crate reads the central directory and the local
/// headers field by field, six `pread`s per entry. Afterwards every read goes
/// straight to the file: extraction reads each entry once, where reading
/// ahead only copied bytes twice.
#[derive(Clone)]
pub(crate) struct SharedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
    /// Whether small reads go through `block` (shared by all clones).
    read_ahead: Arc<AtomicBool>,
    /// Bytes read ahead, starting at offset `block_start`.
    block: Vec<u8>,
    block_start: u64,
}

/// Bytes read ahead for small reads.
const READ_AHEAD: usize = 64 * 1024;

/// Reads at least this long bypass the read-ahead block.
const DIRECT_READ: usize = 8 * 1024;

impl SharedFile {
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(SharedFile {
            file: Arc::new(file),
            len,
            pos: 0,
            read_ahead: Arc::new(AtomicBool::new(true)),
            block: Vec::new(),
            block_start: 0,
        })
    }

    /// Ends reading ahead, for this reader and all its clones.
    fn stop_reading_ahead(&self) {
        self.read_ahead.store(false, Ordering::Relaxed);
    }

    fn reading_ahead(&self) -> bool {
        self.read_ahead.load(Ordering::Relaxed)
    }

    /// The read-ahead bytes at the current position, if any.
    fn ahead(&self) -> &[u8] {
        if !self.reading_ahead() {
            return &[];
        }
        let skip = self.pos.checked_sub(self.block_start).map(usize::try_from);
        match skip {
            Some(Ok(skip)) if skip < self.block.len() => &self.block[skip..],
            _ => &[],
        }
    }

    /// Reads a block ahead from the current position.
    fn read_block(&mut self) -> io::Result<()> {
        self.block.resize(READ_AHEAD, 0);
        self.block_start = self.pos;
        match self.file.read_at(&mut self.block, self.pos) {
            Ok(n) => {
                self.block.truncate(n);
                Ok(())
            }
            Err(e) => {
                self.block.clear();
                Err(e)
            }
        }
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ahead().is_empty() {
            if buf.len() >= DIRECT_READ || !self.reading_ahead() {
                let n = self.file.read_at(buf, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.read_block()?;
        }
        let ahead = self.ahead();
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
/// local headers.
pub(crate) fn open_and_plan(
    file: &File,
    shown: &Path,
    limits: &Limits,
) -> Result<(ZipArchive<SharedFile>, Plan)> {
    let reader = file
        .try_clone()
        .and_then(SharedFile::new)
        .map_err(Error::io("open archive", shown))?;
    let handle = reader.clone();
    let mut central = reader.clone();
    let planned = open_zip(reader, limits).and_then(|mut zip| {
        let plan = Plan::new(&mut zip, &mut central, limits)?;
        Ok((zip, plan))
    });
    handle.stop_reading_ahead(); // extraction reads each entry once
    planned
}

fn open_zip(mut reader: SharedFile, limits: &Limits) -> Result<ZipArchive<SharedFile>> {
    let mut head = [0u8; 512];
    let n = reader.read(&mut head).unwrap_or(0);
    let _ = reader.seek(SeekFrom::Start(0));
    if n == 0 {
        return Err(Error::NotZip("the package is empty (0 bytes)".into()));
    }
    // Before the zip crate reads (and keeps) every central record.
    limits::check_central_directory(&mut reader, limits)?;
    ZipArchive::new(reader).map_err(|e| {
        let text = String::from_utf8_lossy(&head[..n])
            .trim_start()
            .to_lowercase();
        if text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with('<')
        {
            Error::NotZip("the package is an HTML/XML document (an error page?)".into())
        } else if !head[..n].windows(2).any(|w| w == b"PK") {
            Error::NotZip(format!("no ZIP signature found ({e})"))
        } else {
            Error::CorruptArchive(e.to_string())
        }
    })
}

/// Counters the file workers share.
struct Shared<'a> {
    zip: &'a ZipArchive<SharedFile>,
    files: &'a [Planned],
    dest: &'a Path,
    next: AtomicUsize,
    done: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
    error: Mutex<Option<Error>>,
    /// The process umask, to skip `fchmod` where creation gave the exact mode.
    umask: u32,
    /// For a durable deploy: starts the writeback of the files written.
    writeback: Option<&'a Writeback>,
}

impl Shared<'_> {
    /// Extracts files until none are left or someone failed, calling
    /// `after_each` after every file.
    fn work(&self, mut after_each: impl FnMut(&Self)) {
        let mut zip = self.zip.clone();
        let mut buf = vec![0u8; CHUNK];
        while !self.stop.load(Ordering::Relaxed) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(planned) = self.files.get(i) else {
                return;
            };
            match write_file(
                &mut zip,
                planned,
                self.dest,
                self.umask,
                &mut buf,
                self.writeback,
            ) {
                Ok(n) => {
                    self.bytes.fetch_add(n, Ordering::Relaxed);
                    self.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.fail(e),
            }
            after_each(self);
        }
    }

    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }
}

/// Writes every planned file, on as many threads as there are cores, the
/// calling thread included (it alone reports progress).
fn write_files(
    zip: &ZipArchive<SharedFile>,
    plan: &Plan,
    dest: &Path,
    progress: &mut Option<&mut ProgressFn<'_>>,
    writeback: Option<&Writeback>,
) -> Result<u64> {
    let shared = Shared {
        zip,
        files: &plan.files,
        dest,
        next: AtomicUsize::new(0),
        done: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        error: Mutex::new(None),
        umask: umask(),
        writeback,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = if plan.files.len() < 32 {
        0
    } else {
        cores.min(8) - 1
    };
    let total_entries = Some(zip.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|| shared.work(|_| {}));
        }
        shared.work(|shared| {
            let p = Progress {
                stage: Stage::Extract,
                bytes: shared.bytes.load(Ordering::Relaxed),
                total_bytes: Some(plan.total_size),
                entries: shared.done.load(Ordering::Relaxed),
                total_entries,
            };
            if let Err(e) = report(progress, p) {
                shared.fail(e);
            }
        });
    });
    match shared.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(shared.bytes.into_inner()),
    }
}

/// Writes one file: exact length, CRC checked by the reader, mode and mtime.
fn write_file(
    zip: &mut ZipArchive<SharedFile>,
    planned: &Planned,
    dest: &Path,
    umask: u32,
    buf: &mut [u8],
    writeback: Option<&Writeback>,
) -> Result<u64> {
    let corrupt = |why: String| Error::CorruptArchive(format!("entry {:?}: {why}", planned.name));
    let mut entry = zip
        .by_index(planned.index)
        .map_err(|e| corrupt(zip_reason(&e)))?;
    let path = dest.join(&planned.path);
    // create_new = O_CREAT|O_EXCL: fails on any existing path, links included.
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(planned.mode.unwrap_or(0o644))
        .open(&path)
        .map_err(Error::io("create", &path))?;
    let mut written = 0u64;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(read_reason(&e, planned.size))),
        };
        written += n as u64;
        if written > planned.size {
            return Err(corrupt(format!(
                "data is longer than the declared {} bytes",
                planned.size
            )));
        }
        out.write_all(&buf[..n])
            .map_err(Error::io("write", &path))?;
        if let Some(w) = writeback {
            w.wrote(&out, written, n as u64);
        }
    }
    if written != planned.size {
        return Err(corrupt(format!(
            "data is shorter than declared ({written} of {} bytes)",
            planned.size
        )));
    }
    if let Some(mode) = planned.mode.filter(|m| m & umask != 0) {
        // Exact bits where the umask took some at creation (setuid, setgid
        // and sticky were already dropped by planning).
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(Error::io("chmod", &path))?;
    }
    set_file_time(&out, planned.mtime).map_err(Error::io("set the time of", &path))?;
    if let Some(w) = writeback {
        w.finished(&out, written);
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

fn write_symlink(zip: &mut ZipArchive<SharedFile>, planned: &Planned, dest: &Path) -> Result<()> {
    let mut target = Vec::new();
    zip.by_index(planned.index)
        .and_then(|e| Ok(e.take(MAX_LINK_TARGET + 1).read_to_end(&mut target)?))
        .map_err(|e| {
            Error::CorruptArchive(format!("entry {:?}: {}", planned.name, zip_reason(&e)))
        })?;
    let target =
        check_link_target(&planned.path, &target).map_err(|reason| Error::UnsafeEntry {
            entry: planned.name.clone(),
            reason: format!("symlink {reason}"),
        })?;
    let path = dest.join(&planned.path);
    std::os::unix::fs::symlink(&target, &path).map_err(Error::io("symlink", &path))?;
    set_path_time(&path, planned.mtime).map_err(Error::io("set the time of", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_file_reads_the_same_bytes_with_and_without_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 17 % 251) as u8).collect();
        fs::write(&path, &data).unwrap();
        let mut file = SharedFile::new(File::open(&path).unwrap()).unwrap();
        let mut other = file.clone();
        for read_ahead in [true, false] {
            if !read_ahead {
                other.stop_reading_ahead(); // for all clones
            }
            // Small and large reads, forwards, backwards and across block ends.
            for (pos, len) in [
                (0, 4),
                (4, 26),
                (30, 100),
                (65_530, 12),
                (10, 40_000),
                (299_990, 10),
                (100_000, 8 * 1024),
                (70_000, 3),
            ] {
                file.seek(SeekFrom::Start(pos)).unwrap();
                let mut buf = vec![0u8; len];
                file.read_exact(&mut buf).unwrap();
                assert_eq!(buf, data[pos as usize..pos as usize + len], "{pos}+{len}");
            }
            assert_eq!(file.ahead().is_empty(), !read_ahead);
            file.seek(SeekFrom::Start(300_000)).unwrap();
            assert_eq!(file.read(&mut [0u8; 4]).unwrap(), 0, "at the end");
            file.seek(SeekFrom::End(-2)).unwrap();
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, data[data.len() - 2..]);
        }
        // A clone keeps its own position.
        let mut head = [0u8; 3];
        other.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..3]);
    }
}
