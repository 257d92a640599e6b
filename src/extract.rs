//! Extract stage: archive → fresh staging directory, every entry checked.
//!
//! Extraction happens in two phases. *Planning* reads only the central
//! directory and refuses, before a byte is written, every entry that is
//! unsafe (absolute, `..`, NUL or control characters, backslashes, devices,
//! FIFOs, entries below a symlink or a file), ambiguous (duplicates, a file
//! and a directory with one name, local/central header mismatch, overlapping
//! entries), unsupported (encryption, exotic compression) or over a limit.
//! *Writing* then creates directories, fills files on all cores (each created
//! with `O_EXCL`, so nothing is ever written through a link), checks each
//! entry's length and CRC, creates symlinks last (each target checked to stay
//! inside the tree) and finally applies directory modes.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, Limit, Result};
use crate::progress::{report, Progress, ProgressFn, Stage};

/// Size of each extraction worker's copy buffer.
const CHUNK: usize = 256 * 1024;
/// Longest symlink target accepted.
const MAX_LINK_TARGET: u64 = 4096;
/// Longest file name component most filesystems accept.
const MAX_COMPONENT: usize = 255;
/// Entries smaller than this are never refused for their ratio.
const RATIO_MIN_SIZE: u64 = 1 << 20;

/// Resource limits of extraction. The defaults are generous for real
/// applications (a large `node_modules`) and fatal for bombs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the uncompressed sizes of all entries. Default 8 GiB.
    pub max_total_size: u64,
    /// Number of entries. Default 1,000,000.
    pub max_entries: u64,
    /// Uncompressed/compressed ratio of one entry larger than 1 MiB.
    /// Default 2,000 (deflate cannot exceed about 1,032).
    pub max_ratio: u64,
    /// Refuse to start when the filesystem lacks the space or inodes the
    /// archive declares. Default on.
    pub check_free_space: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_size: 8 << 30,
            max_entries: 1_000_000,
            max_ratio: 2_000,
            check_free_space: true,
        }
    }
}

/// What extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    mut progress: Option<&mut ProgressFn<'_>>,
) -> Result<Extracted> {
    let file = File::open(archive).map_err(Error::io("open archive", archive))?;
    let reader = SharedFile::new(file).map_err(Error::io("stat archive", archive))?;
    let mut zip = open_zip(reader.clone())?;
    let plan = Plan::new(&mut zip, limits)?;
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
    extracted.bytes = write_files(&zip, &plan, dest, &mut progress)?;
    extracted.files = plan.files.len() as u64;
    for link in &plan.symlinks {
        write_symlink(&mut zip, link, dest)?;
        extracted.symlinks += 1;
    }
    // Deepest first, so a read-only parent never blocks its children.
    for (dir, mode) in plan.dir_modes.iter().rev() {
        let path = dest.join(dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))
            .map_err(Error::io("chmod", &path))?;
    }
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

/// A file read with `pread`, so clones share the descriptor but not the
/// position: each extraction thread gets its own cursor into one archive.
#[derive(Clone)]
struct SharedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
}

impl SharedFile {
    fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(SharedFile {
            file: Arc::new(file),
            len,
            pos: 0,
        })
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
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

fn open_zip(mut reader: SharedFile) -> Result<ZipArchive<SharedFile>> {
    let mut head = [0u8; 512];
    let n = reader.read(&mut head).unwrap_or(0);
    let _ = reader.seek(SeekFrom::Start(0));
    if n == 0 {
        return Err(Error::NotZip("the package is empty (0 bytes)".into()));
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry to write: index in the archive, checked relative path.
#[derive(Debug)]
struct Planned {
    index: usize,
    name: String,
    path: PathBuf,
    size: u64,
    mode: Option<u32>,
    mtime: Option<SystemTime>,
}

/// The checked plan of an archive: what to create, in which order.
#[derive(Debug, Default)]
struct Plan {
    /// Every directory to create, explicit or implied, parents first.
    dirs: BTreeSet<PathBuf>,
    /// Permission bits the archive gives its directories.
    dir_modes: Vec<(PathBuf, u32)>,
    files: Vec<Planned>,
    symlinks: Vec<Planned>,
    total_size: u64,
}

impl Plan {
    fn new(zip: &mut ZipArchive<SharedFile>, limits: &Limits) -> Result<Plan> {
        let count = zip.len() as u64;
        if count > limits.max_entries {
            return Err(Error::LimitExceeded {
                limit: Limit::Entries,
                max: limits.max_entries,
                actual: count,
                entry: None,
            });
        }
        let mut plan = Plan::default();
        let mut kinds: HashMap<PathBuf, Kind> = HashMap::with_capacity(zip.len());
        for index in 0..zip.len() {
            let entry = zip
                .by_index_data(index)
                .map_err(|e| Error::CorruptArchive(format!("entry #{index}: {e}")))?;
            let raw = entry.name_raw();
            let name = display_name(raw);
            let unsafe_entry = |reason: &str| Error::UnsafeEntry {
                entry: name.clone(),
                reason: reason.into(),
            };
            if raw.contains(&0) {
                return Err(unsafe_entry("NUL byte in name"));
            }
            if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err(unsafe_entry("control character in name"));
            }
            let decoded = entry
                .name()
                .map_err(|_| unsafe_entry("name is not valid in its declared encoding"))?
                .into_owned();
            let (path, named_dir) = check_name(&decoded).map_err(|r| unsafe_entry(&r))?;
            let mode = (entry.system() == zip::System::Unix)
                .then(|| entry.external_attributes() >> 16)
                .filter(|m| *m != 0);
            let kind = match mode.map(|m| m & 0o170000) {
                None | Some(0) if named_dir => Kind::Dir,
                None | Some(0) => Kind::File,
                Some(0o040000) => Kind::Dir,
                Some(0o100000) if !named_dir => Kind::File,
                Some(0o120000) if !named_dir => Kind::Symlink,
                Some(0o100000 | 0o120000) => {
                    return Err(unsafe_entry(
                        "name ends in '/' but the mode is not a directory",
                    ));
                }
                Some(0o010000) => return Err(unsafe_entry("FIFOs are refused")),
                Some(0o020000 | 0o060000) => return Err(unsafe_entry("device files are refused")),
                Some(0o140000) => return Err(unsafe_entry("sockets are refused")),
                Some(t) => return Err(unsafe_entry(&format!("unknown file type {t:o}"))),
            };
            if entry.encrypted() {
                return Err(Error::UnsupportedEntry {
                    entry: name,
                    reason: "encrypted entries are not supported".into(),
                });
            }
            let method = entry.compression();
            if kind != Kind::Dir && !supported(method) {
                return Err(Error::UnsupportedEntry {
                    entry: name,
                    reason: format!("compression method {method} is not supported"),
                });
            }
            let size = entry.size();
            plan.total_size = plan.total_size.saturating_add(size);
            if plan.total_size > limits.max_total_size {
                return Err(Error::LimitExceeded {
                    limit: Limit::TotalSize,
                    max: limits.max_total_size,
                    actual: plan.total_size,
                    entry: Some(name),
                });
            }
            let ratio = size / entry.compressed_size().max(1);
            if size >= RATIO_MIN_SIZE && ratio > limits.max_ratio {
                return Err(Error::LimitExceeded {
                    limit: Limit::Ratio,
                    max: limits.max_ratio,
                    actual: ratio,
                    entry: Some(name),
                });
            }
            if kind == Kind::Symlink && size > MAX_LINK_TARGET {
                return Err(unsafe_entry("symlink target longer than 4096 bytes"));
            }
            if let Some(previous) = kinds.insert(path.clone(), kind) {
                return Err(Error::CorruptArchive(if previous == kind {
                    format!("duplicate entry {name:?}")
                } else {
                    format!("entry {name:?}: a file and a directory (or link) share this name")
                }));
            }
            let perm = mode.map(|m| m & 0o777);
            let planned = Planned {
                index,
                name,
                path,
                size,
                mode: perm,
                mtime: entry.last_modified().and_then(dos_time_to_system),
            };
            match kind {
                Kind::Dir => {
                    if let Some(m) = perm {
                        plan.dir_modes.push((planned.path.clone(), m));
                    }
                    plan.dirs.insert(planned.path);
                }
                Kind::File => plan.files.push(planned),
                Kind::Symlink => plan.symlinks.push(planned),
            }
        }
        // Every ancestor must be a real directory: never a file, never a link.
        let all = plan.files.iter().chain(&plan.symlinks).map(|p| &p.path);
        let mut implied = Vec::new();
        for path in all.chain(plan.dirs.iter()) {
            for ancestor in path.ancestors().skip(1) {
                if ancestor.as_os_str().is_empty() {
                    break;
                }
                match kinds.get(ancestor) {
                    Some(Kind::Dir) => {}
                    None => implied.push(ancestor.to_path_buf()),
                    Some(Kind::File) => {
                        return Err(Error::CorruptArchive(format!(
                            "entry {:?} is below {:?}, which is a file",
                            path.display().to_string(),
                            ancestor.display().to_string()
                        )))
                    }
                    Some(Kind::Symlink) => {
                        return Err(Error::UnsafeEntry {
                            entry: path.display().to_string(),
                            reason: format!(
                                "would be written through the symlink {:?}",
                                ancestor.display().to_string()
                            ),
                        })
                    }
                }
            }
        }
        plan.dirs.extend(implied);
        plan.dir_modes.sort();
        // Duplicates, local/central mismatches, overlapping entries (Fifield
        // bombs) and hidden local headers: the zip crate checks them all.
        zip.validate_header_consistency()
            .map_err(|e| Error::CorruptArchive(zip_reason(&e)))?;
        // Largest first, so the workers finish together.
        plan.files.sort_by_key(|p| std::cmp::Reverse(p.size));
        Ok(plan)
    }
}

/// An entry name fit for a one-line message: lossily decoded, and cut
/// short when an archive uses absurdly long names.
fn display_name(raw: &[u8]) -> String {
    const MAX: usize = 120;
    let name = String::from_utf8_lossy(raw);
    if name.chars().count() <= MAX {
        return name.into_owned();
    }
    let head: String = name.chars().take(MAX).collect();
    format!("{head}… ({} bytes)", raw.len())
}

fn supported(method: CompressionMethod) -> bool {
    matches!(
        method,
        CompressionMethod::Stored
            | CompressionMethod::Deflated
            | CompressionMethod::Deflate64
            | CompressionMethod::Bzip2
            | CompressionMethod::Lzma
    )
}

fn zip_reason(e: &ZipError) -> String {
    match e {
        ZipError::InvalidArchive(why) => why.to_string(),
        other => other.to_string(),
    }
}

/// Checks an entry name and turns it into a relative path; the flag says the
/// name ends in `/`. The rules are strict on purpose: anything an extractor
/// could read two ways is refused.
fn check_name(name: &str) -> std::result::Result<(PathBuf, bool), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    if name.contains('\\') {
        return Err("backslash in name (a Windows path separator is ambiguous)".into());
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err("drive letter in name".into());
    }
    let (body, named_dir) = match name.strip_suffix('/') {
        Some(body) => (body, true),
        None => (name, false),
    };
    let mut path = PathBuf::new();
    for component in body.split('/') {
        match component {
            "" => return Err("empty path component ('//')".into()),
            "." => return Err("'.' path component".into()),
            ".." => return Err("'..' path component".into()),
            c if c.len() > MAX_COMPONENT => {
                return Err(format!("path component longer than {MAX_COMPONENT} bytes"))
            }
            c => path.push(c),
        }
    }
    Ok((path, named_dir))
}

/// Checks a symlink target: relative, and any `..` only at the start, no
/// deeper than the link's own directory. Such a target resolves inside the
/// tree even through other links, since every link is checked the same way
/// and no entry is written below a link.
fn check_link_target(link: &Path, target: &[u8]) -> std::result::Result<PathBuf, String> {
    let target = std::str::from_utf8(target).map_err(|_| "target is not UTF-8".to_string())?;
    if target.is_empty() {
        return Err("empty target".into());
    }
    if target.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("control character in target".into());
    }
    let depth = link.components().count() - 1;
    let mut ups = 0;
    let mut descended = false;
    for component in Path::new(target).components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "absolute target {target:?} points outside the tree"
                ))
            }
            Component::CurDir => {}
            Component::ParentDir if descended => {
                return Err(format!("target {target:?} has '..' after a name"))
            }
            Component::ParentDir => {
                ups += 1;
                if ups > depth {
                    return Err(format!("target {target:?} points outside the tree"));
                }
            }
            Component::Normal(_) => descended = true,
        }
    }
    Ok(PathBuf::from(target))
}

fn check_free_space(dest: &Path, plan: &Plan) -> Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    let Ok(stat) = rustix::fs::statvfs(parent) else {
        return Ok(()); // not all filesystems report; writing will tell
    };
    let entries = (plan.files.len() + plan.dirs.len() + plan.symlinks.len()) as u64;
    // One block of slack per entry covers partially filled blocks.
    let needed = plan.total_size + entries * stat.f_frsize.max(512);
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    if needed > available {
        return Err(Error::NoSpace {
            path: parent.to_path_buf(),
            needed,
            available,
        });
    }
    if stat.f_files > 0 && entries > stat.f_favail {
        return Err(Error::NoSpace {
            path: parent.to_path_buf(),
            needed: entries,
            available: stat.f_favail,
        });
    }
    Ok(())
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
            match write_file(&mut zip, planned, self.dest, &mut buf) {
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
    buf: &mut [u8],
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
    }
    if written != planned.size {
        return Err(corrupt(format!(
            "data is shorter than declared ({written} of {} bytes)",
            planned.size
        )));
    }
    if let Some(mode) = planned.mode {
        // Exact bits (the umask applied at creation), minus setuid/setgid/sticky.
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(Error::io("chmod", &path))?;
    }
    if let Some(mtime) = planned.mtime {
        let _ = out.set_modified(mtime);
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
    std::os::unix::fs::symlink(&target, &path).map_err(Error::io("symlink", &path))
}

/// Converts a ZIP (MS-DOS) timestamp, taken as UTC, to a `SystemTime`.
fn dos_time_to_system(t: zip::DateTime) -> Option<SystemTime> {
    let (y, m, d) = (
        i64::from(t.year()),
        i64::from(t.month()),
        i64::from(t.day()),
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + i64::from(t.hour()) * 3600
        + i64::from(t.minute()) * 60
        + i64::from(t.second());
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_or_are_ambiguous_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "..\\..\\x",
            "C:/Windows/x",
            "c:x",
            "",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn ordinary_names_become_relative_paths() {
        assert_eq!(
            check_name("a/b.txt").unwrap(),
            (PathBuf::from("a/b.txt"), false)
        );
        assert_eq!(check_name("a/b/").unwrap(), (PathBuf::from("a/b"), true));
        assert_eq!(
            check_name("ünïcødé/файл").unwrap().0,
            PathBuf::from("ünïcødé/файл")
        );
    }

    #[test]
    fn link_targets_must_stay_inside() {
        let link = Path::new("a/b/link");
        assert!(check_link_target(link, b"../../x").is_ok());
        assert!(check_link_target(link, b"../c/d").is_ok());
        assert!(check_link_target(link, b"sibling").is_ok());
        assert!(check_link_target(link, b"../../../x").is_err());
        assert!(check_link_target(link, b"/etc/passwd").is_err());
        assert!(check_link_target(link, b"c/../../../..").is_err());
        assert!(check_link_target(link, b"c/../d").is_err());
        assert!(check_link_target(Path::new("top"), b"..").is_err());
        assert!(check_link_target(link, b"").is_err());
    }

    #[test]
    fn dos_times_convert_to_unix_seconds() {
        let t = zip::DateTime::from_date_and_time(2010, 9, 5, 4, 12, 0).unwrap();
        let secs = dos_time_to_system(t)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_283_659_920);
    }
}
