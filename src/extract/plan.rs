//! Planning: the checks that run on the central directory before a byte is
//! written, and the rules for names and link targets that every extraction
//! path (after the download, or while it streams) applies.
//!
//! Planning reads the central directory once, one record at a time, and
//! keeps per entry only what writing needs without the names: for a file
//! its size and the offsets of its central record and data (24 bytes), for
//! a symlink the offset of its record (8 bytes), and every path as keyed
//! hashes in a [`PathTable`] (16 bytes a file, 40 a directory; see
//! `dirs.rs`). Entries laid out in the order of the file are checked for
//! overlaps on the way; only an archive out of order collects each entry's
//! byte range (16 bytes). Measured with the release CLI on the benchmark's
//! `many` package (200,000 entries of a `node_modules` tree, names of 92
//! bytes on average): a whole deploy from a local path peaks at 15.8 MiB of
//! RSS, about 60 bytes an entry over the 4 MiB of a tiny package; over HTTP,
//! where the streaming walker's tables (about 50 bytes an entry) are held
//! while the plan is made, at 26.9 MiB, about 115 bytes an entry. It was
//! 170 MiB (0.8 KiB an entry) when the zip crate's `ZipArchive` held every
//! parsed record and the plan held every name.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use zip::result::ZipError;
use zip::CompressionMethod;

use super::central::{Directory, Record};
use super::dirs::{Collision, Known, Leaf, PathKeys, PathTable};
use super::limits::check_path;
use super::{Limits, SharedFile};
use crate::error::{Error, Limit, Result};

/// Longest symlink target accepted.
pub(crate) const MAX_LINK_TARGET: u64 = 4096;
/// Longest file name component most filesystems accept.
const MAX_COMPONENT: usize = 255;
/// Entries smaller than this are never refused for their ratio.
const RATIO_MIN_SIZE: u64 = 1 << 20;
/// Plans tried with new hash keys after two paths collided.
const ATTEMPTS: usize = 4;
/// Files at least this large are written first, one per worker at a time;
/// smaller ones in batches, in the order of the archive.
pub(crate) const LARGE_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
}

/// A file to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileRef {
    pub(crate) size: u64,
    /// Offset of its central directory record.
    pub(crate) central: u64,
}

/// The checked plan of an archive: what to create, in which order.
#[derive(Default)]
pub(crate) struct Plan {
    /// Where the central directory is, to read it again.
    pub(crate) directory: Directory,
    /// Every path: files, symlinks and directories (listed or implied),
    /// with the directories' modes and times.
    pub(crate) paths: PathTable,
    /// Files: those of at least [`LARGE_FILE`] bytes first, largest first
    /// (so that the workers finish together), then the others in the order
    /// of the central directory. Neighbours in an archive share their
    /// directory and their blocks of the archive: written in that order,
    /// each batch of small files reads one stretch of the archive and
    /// creates its files in one directory, where sorting them all by size
    /// scattered every create over the whole tree (200,000 tiny files took
    /// 2.5 times as long).
    pub(crate) files: Vec<FileRef>,
    /// Offsets of the symlinks' central records.
    pub(crate) symlinks: Vec<u64>,
    pub(crate) total_size: u64,
}

/// One entry's checked facts, from its central record.
pub(crate) struct Checked {
    pub(crate) kind: Kind,
    /// Relative path; empty for `./`, the root.
    pub(crate) path: PathBuf,
    /// The name as shown in errors.
    pub(crate) name: String,
    /// Permission bits (no type, setuid, setgid or sticky), where the
    /// archive gives them.
    pub(crate) mode: Option<u32>,
}

/// Why one planning attempt stopped.
enum Stop {
    Refused(Error),
    /// Two paths collided under this attempt's keys.
    Collision,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Refused(e)
    }
}

impl From<Collision> for Stop {
    fn from(_: Collision) -> Self {
        Stop::Collision
    }
}

impl Plan {
    /// Plans the archive `reader` reads (a fresh reader, reading ahead).
    pub(crate) fn new(reader: &SharedFile, head: &[u8], limits: &Limits) -> Result<Plan> {
        for _ in 0..ATTEMPTS {
            match plan_once(reader.clone(), head, limits, PathKeys::default()) {
                Ok(plan) => return Ok(plan),
                Err(Stop::Refused(e)) => return Err(e),
                Err(Stop::Collision) => continue,
            }
        }
        Err(Error::CorruptArchive(
            "entry paths collide under every hash key tried".into(),
        ))
    }

    /// Entries in the archive.
    pub(crate) fn entries(&self) -> u64 {
        self.directory.entries
    }
}

/// Checks one central record on its own: name, type, method, limits of one
/// entry. Every pass over the directory applies it again, so nothing
/// written depends on a name read only once.
pub(crate) fn check_entry(record: &Record, limits: &Limits) -> Result<Checked> {
    let raw = record.name.as_slice();
    let name = display_name(raw);
    let unsafe_entry = |reason: &str| Error::UnsafeEntry {
        entry: display_name(raw),
        reason: reason.into(),
    };
    if raw.contains(&0) {
        return Err(unsafe_entry("NUL byte in name"));
    }
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(unsafe_entry("control character in name"));
    }
    let decoded = decode_name(raw);
    let (path, named_dir) = check_name(&decoded).map_err(|r| unsafe_entry(&r))?;
    check_path(path.as_os_str().as_encoded_bytes(), limits)?;
    let mode = record.unix_mode();
    let size = record.size;
    let kind = match mode.map(|m| m & 0o170000) {
        None | Some(0) if named_dir => Kind::Dir,
        None | Some(0) => Kind::File,
        Some(0o040000) => Kind::Dir,
        Some(0o100000) if !named_dir => Kind::File,
        Some(0o120000) if !named_dir => Kind::Symlink,
        // FIFOs and devices are never created. One that carries data
        // is a regular file, as unzip makes it (Info-ZIP's
        // `cmd | zip x.zip -` stores the pipe's mode); an empty one
        // is refused, as nothing tells it from a real special file.
        Some(0o010000 | 0o020000 | 0o060000) if size > 0 && !named_dir => Kind::File,
        Some(0o100000 | 0o120000 | 0o010000 | 0o020000 | 0o060000) if named_dir => {
            return Err(unsafe_entry(
                "name ends in '/' but the mode is not a directory",
            ));
        }
        Some(0o010000) => return Err(unsafe_entry("FIFOs are refused (no data)")),
        Some(0o020000 | 0o060000) => {
            return Err(unsafe_entry("device files are refused (no data)"))
        }
        Some(0o140000) => return Err(unsafe_entry("sockets are refused")),
        Some(t) => return Err(unsafe_entry(&format!("unknown file type {t:o}"))),
    };
    if record.encrypted() {
        return Err(Error::UnsupportedEntry {
            entry: name,
            reason: "encrypted entries are not supported".into(),
        });
    }
    let method = method_of(record.method);
    if kind != Kind::Dir && !supported(method) {
        return Err(Error::UnsupportedEntry {
            entry: name,
            reason: format!("compression method {method} is not supported"),
        });
    }
    let ratio = size / record.compressed.max(1);
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
    if path.as_os_str().is_empty() && kind != Kind::Dir {
        // `./` (bsdtar's `-C dir .`): the root itself, which the archive
        // cannot describe; as a directory it adds nothing.
        return Err(unsafe_entry(
            "names the root directory but is not a directory",
        ));
    }
    Ok(Checked {
        kind,
        path,
        name,
        mode: mode.map(|m| m & 0o777),
    })
}

/// The compression method a record's method field names.
pub(crate) fn method_of(method: u16) -> CompressionMethod {
    #[allow(deprecated)] // the constants cover only the methods compiled in
    CompressionMethod::from_u16(method)
}

fn plan_once(
    mut reader: SharedFile,
    head: &[u8],
    limits: &Limits,
    keys: PathKeys,
) -> std::result::Result<Plan, Stop> {
    let len = reader.len();
    let directory = Directory::find(&mut reader, len).map_err(|e| open_error(&e, head))?;
    let count = usize::try_from(directory.entries).unwrap_or(usize::MAX);
    if directory.entries > limits.max_entries {
        return Err(Error::LimitExceeded {
            limit: Limit::Entries,
            max: limits.max_entries,
            actual: directory.entries,
            entry: None,
        }
        .into());
    }
    let mut plan = Plan {
        directory,
        paths: PathTable::with_capacity(keys, count),
        files: Vec::with_capacity(count),
        ..Plan::default()
    };
    let mut layout = Layout::default();
    let file = reader.with_block(0);
    // A file or symlink something else is below (reported after the loop,
    // with the least such path).
    let mut below_leaf = false;
    let (mut name, mut extra) = (Vec::new(), Vec::new());
    directory.each(
        &mut reader,
        |index, record, reader| -> std::result::Result<(), Stop> {
            let data = check_local(reader, record, &mut name, &mut extra).map_err(|why| {
                Error::CorruptArchive(format!("entry {:?}: {why}", display_name(&record.name)))
            })?;
            let end = data.checked_add(record.compressed).ok_or_else(|| {
                Error::CorruptArchive(format!("entry #{index}: its data ends beyond 2^64 bytes"))
            })?;
            layout.add(record.header, end, &file);
            if index == count / 2 {
                plan.directory.middle = Some((index, record.at));
            }
            let checked = check_entry(record, limits)?;
            plan.total_size = plan.total_size.saturating_add(record.size);
            if plan.total_size > limits.max_total_size {
                return Err(Error::LimitExceeded {
                    limit: Limit::TotalSize,
                    max: limits.max_total_size,
                    actual: plan.total_size,
                    entry: Some(checked.name),
                }
                .into());
            }
            if checked.path.as_os_str().is_empty() {
                return Ok(()); // `./`
            }
            below_leaf |= claim(&mut plan, &checked, record, limits)?;
            match checked.kind {
                Kind::File => plan.files.push(FileRef {
                    size: record.size,
                    central: record.at,
                }),
                Kind::Symlink => plan.symlinks.push(record.at),
                Kind::Dir => {}
            }
            Ok(())
        },
    )?;
    if below_leaf {
        return Err(below_a_leaf(&plan, limits, &mut reader)?.into());
    }
    if layout.sorted {
        layout.add(directory.start, directory.start, &reader);
        if let Some(e) = layout.hidden {
            return Err(e.into());
        }
    } else {
        // Entries out of order (or overlapping): each one's byte range.
        let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(count);
        let (mut name, mut extra) = (Vec::new(), Vec::new());
        directory.each(&mut reader.clone(), |_, record, reader| -> Result<()> {
            let data = check_local(reader, record, &mut name, &mut extra)
                .map_err(Error::CorruptArchive)?;
            ranges.push((record.header, data.saturating_add(record.compressed)));
            Ok(())
        })?;
        check_ranges(&mut ranges, directory.start, &mut reader)?;
    }
    // Stable: the small files keep the order of the archive.
    plan.files.sort_by_key(|f| match f.size >= LARGE_FILE {
        true => std::cmp::Reverse(f.size),
        false => std::cmp::Reverse(0),
    });
    plan.files.shrink_to_fit();
    plan.symlinks.shrink_to_fit();
    Ok(plan)
}

/// The error for an archive whose central directory cannot be found;
/// `head` is its start.
fn open_error(why: &str, head: &[u8]) -> Error {
    let text = String::from_utf8_lossy(head).trim_start().to_lowercase();
    if text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with('<') {
        Error::NotZip("the package is an HTML/XML document (an error page?)".into())
    } else if !head.windows(2).any(|w| w == b"PK") {
        Error::NotZip(format!("no ZIP signature found ({why})"))
    } else {
        Error::CorruptArchive(why.into())
    }
}

/// Checks the local header of `central`'s entry against it, as the zip
/// crate's header consistency check does (`name` and `extra` are buffers);
/// returns where the entry's data starts.
fn check_local<R: Read + Seek>(
    reader: &mut R,
    central: &Record,
    name: &mut Vec<u8>,
    extra: &mut Vec<u8>,
) -> std::result::Result<u64, String> {
    let mut fixed = [0u8; 30];
    let mut read = || -> io::Result<()> {
        reader.seek(SeekFrom::Start(central.header))?;
        reader.read_exact(&mut fixed)?;
        name.resize(usize::from(u16::from_le_bytes([fixed[26], fixed[27]])), 0);
        extra.resize(usize::from(u16::from_le_bytes([fixed[28], fixed[29]])), 0);
        reader.read_exact(name)?;
        reader.read_exact(extra)
    };
    read().map_err(|e| format!("local header: {e}"))?;
    if fixed[..4] != *b"PK\x03\x04" {
        return Err(
            "header inconsistency detected: no local header where the central \
                    directory says (mismatch)"
                .into(),
        );
    }
    let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap());
    let mismatch = |what: &str| {
        format!(
            "header inconsistency detected: {what} mismatch (local header and central directory)"
        )
    };
    let local_name = unicode_path(name, extra);
    if local_name.as_deref().unwrap_or(name) != central.name.as_slice() {
        return Err(mismatch("filename"));
    }
    let flags = u16_at(6);
    if u16_at(8) != central.method {
        return Err(mismatch("compression method"));
    }
    if flags & 1 != central.flags & 1 {
        return Err(mismatch("encryption flag"));
    }
    let described = flags & 8 != 0;
    if described != (central.flags & 8 != 0) {
        return Err(mismatch("data descriptor flag"));
    }
    if (u16_at(12), u16_at(10)) != central.dos {
        return Err(mismatch("last modified time"));
    }
    let (mut compressed, mut size) = (u64::from(u32_at(18)), u64::from(u32_at(22)));
    if let Some(zip64) = super::central::extra_field(extra, 0x0001) {
        let mut values = zip64
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        for field in [&mut size, &mut compressed] {
            if *field == u64::from(u32::MAX) {
                if let Some(v) = values.next() {
                    *field = v;
                }
            }
        }
    }
    // With a data descriptor, the local header may leave them zero.
    let agrees = |local: u64, central: u64| local == central || (described && local == 0);
    if !agrees(u64::from(u32_at(14)), u64::from(central.crc)) {
        return Err(mismatch("CRC32 checksum"));
    }
    if !agrees(compressed, central.compressed) {
        return Err(mismatch("compressed size"));
    }
    if !agrees(size, central.size) {
        return Err(mismatch("uncompressed size"));
    }
    let lengths = 30 + name.len() as u64 + extra.len() as u64;
    central
        .header
        .checked_add(lengths)
        .ok_or_else(|| "local header end offset overflows u64".into())
}

/// Where the data of the entry whose local header is at `header` starts.
pub(crate) fn data_start<R: Read + Seek>(reader: &mut R, header: u64) -> io::Result<u64> {
    let mut lengths = [0u8; 4];
    reader.seek(SeekFrom::Start(header + 26))?;
    reader.read_exact(&mut lengths)?;
    let name = u64::from(u16::from_le_bytes([lengths[0], lengths[1]]));
    let extra = u64::from(u16::from_le_bytes([lengths[2], lengths[3]]));
    header
        .checked_add(30 + name + extra)
        .ok_or_else(|| io::Error::other("local header end offset overflows u64"))
}

/// Records the entry's path and its ancestors in the plan's table, refusing
/// duplicates and clashes as they come. Returns whether the entry is a file
/// or symlink below which another entry lies, or lies below one (refused
/// after the loop, naming the least such path, as before any directory
/// exists).
fn claim(
    plan: &mut Plan,
    checked: &Checked,
    record: &Record,
    limits: &Limits,
) -> std::result::Result<bool, Stop> {
    let time = record.mtime();
    let paths = &mut plan.paths;
    let keys = paths.keys.clone();
    let depth = checked.path.components().count();
    let mut below_leaf = false;
    let mut level = 0;
    let mut own = None;
    keys.each_prefix(&checked.path, |_, key| -> std::result::Result<(), Stop> {
        level += 1;
        if level == depth {
            own = Some(key);
            return Ok(());
        }
        match paths.known(key)? {
            Known::Leaf(_) => below_leaf = true,
            Known::Nothing | Known::ImpliedDir | Known::ListedDir => {
                if paths.imply_dir(key, time) {
                    count_one(paths.len(), limits)?;
                }
            }
        }
        Ok(())
    })?;
    let key = own.expect("a non-empty path has a key");
    let clash = |previous: Kind| -> Stop {
        let name = &checked.name;
        Stop::Refused(Error::CorruptArchive(if previous == checked.kind {
            format!("duplicate entry {name:?}")
        } else {
            format!("entry {name:?}: a file and a directory (or link) share this name")
        }))
    };
    match (paths.known(key)?, checked.kind) {
        (Known::Leaf(Leaf::File), _) => return Err(clash(Kind::File)),
        (Known::Leaf(Leaf::Symlink), _) => return Err(clash(Kind::Symlink)),
        (Known::ListedDir, _) => return Err(clash(Kind::Dir)),
        // Made for an entry below it, listed now (Windows tools list
        // directories after their contents).
        (Known::ImpliedDir, Kind::Dir) => {
            paths.list_dir(key, time, checked.mode);
        }
        (Known::ImpliedDir, Kind::File) => {
            paths.mark_leaf(key, Leaf::File);
            below_leaf = true;
        }
        (Known::ImpliedDir, Kind::Symlink) => {
            paths.mark_leaf(key, Leaf::Symlink);
            below_leaf = true;
        }
        (Known::Nothing, Kind::Dir) => {
            paths.list_dir(key, time, checked.mode);
            count_one(paths.len(), limits)?;
        }
        (Known::Nothing, Kind::File) => {
            paths.add_leaf(key, Leaf::File);
            count_one(paths.len(), limits)?;
        }
        (Known::Nothing, Kind::Symlink) => {
            paths.add_leaf(key, Leaf::Symlink);
            count_one(paths.len(), limits)?;
        }
    }
    Ok(below_leaf)
}

/// Refuses a path beyond the entry limit: directories the archive only
/// implies count as entries.
fn count_one(paths: usize, limits: &Limits) -> Result<()> {
    if paths as u64 > limits.max_entries {
        return Err(Error::LimitExceeded {
            limit: Limit::Entries,
            max: limits.max_entries,
            actual: paths as u64,
            entry: None,
        });
    }
    Ok(())
}

/// The error for an archive with an entry below a file or symlink: the
/// least such file or symlink and the least entry below it, confirmed by
/// comparing the names themselves (else two paths collided).
fn below_a_leaf(
    plan: &Plan,
    limits: &Limits,
    reader: &mut SharedFile,
) -> std::result::Result<Error, Stop> {
    // (the file or symlink, its kind, the least entry below it)
    let mut least: Option<(PathBuf, Leaf, PathBuf)> = None;
    plan.directory
        .each(reader, |_, record, _| -> std::result::Result<(), Stop> {
            let checked = check_entry(record, limits)?;
            let depth = checked.path.components().count();
            let mut level = 0;
            plan.paths
                .keys
                .each_prefix(&checked.path, |prefix, key| {
                    level += 1;
                    let Some(leaf) = plan.paths.leaf_at(key).filter(|_| level < depth) else {
                        return Ok(());
                    };
                    let better = least.as_ref().is_none_or(|(p, _, b)| {
                        (prefix, checked.path.as_path()) < (p.as_path(), b.as_path())
                    });
                    if better {
                        least = Some((prefix.to_path_buf(), leaf, checked.path.clone()));
                    }
                    Err(()) // the least ancestor that is a leaf is the one
                })
                .unwrap_or(());
            Ok(())
        })?;
    let Some((leaf, kind, below)) = least else {
        return Err(Stop::Collision);
    };
    let mut confirmed = false;
    plan.directory
        .each(reader, |_, record, _| -> std::result::Result<(), Stop> {
            let checked = check_entry(record, limits)?;
            let same_kind = matches!(
                (checked.kind, kind),
                (Kind::File, Leaf::File) | (Kind::Symlink, Leaf::Symlink)
            );
            confirmed |= same_kind && checked.path == leaf;
            Ok(())
        })?;
    if !confirmed {
        return Err(Stop::Collision);
    }
    let below = below.display().to_string();
    let dir = leaf.display().to_string();
    Ok(match kind {
        Leaf::File => {
            Error::CorruptArchive(format!("entry {below:?} is below {dir:?}, which is a file"))
        }
        Leaf::Symlink => Error::UnsafeEntry {
            entry: below,
            reason: format!("would be written through the symlink {dir:?}"),
        },
    })
}

/// The entries' byte ranges seen so far, while they come in the order of
/// the file (as every writer lays them out): each one must start at or
/// after the end of the one before, and no local header may hide between
/// them. Checked on the way in constant memory; entries out of order are
/// checked after the pass by [`check_ranges`].
struct Layout {
    /// Whether every range so far started where or after the last ended.
    sorted: bool,
    /// End of the last range.
    end: u64,
    /// A hidden local header, refused after the pass (as the other
    /// checks of the layout).
    hidden: Option<Error>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            sorted: true,
            end: 0,
            hidden: None,
        }
    }
}

impl Layout {
    /// The next entry spans `[start, end)` (the central directory: `start`
    /// twice).
    fn add(&mut self, start: u64, end: u64, reader: &SharedFile) {
        if !self.sorted || start < self.end {
            self.sorted = false;
            return;
        }
        if self.hidden.is_none() && self.end < start {
            if let Err(e) = hidden_header(reader, self.end, start) {
                self.hidden = Some(e);
            }
        }
        self.end = end;
    }
}

/// Refuses overlapping entries (the Fifield zip bomb), data reaching into
/// the central directory, and local headers hidden between the entries (a
/// second archive an extractor reading from the front would see): what the
/// zip crate's `ZipArchive::validate_header_consistency` checks.
fn check_ranges(ranges: &mut [(u64, u64)], dir_start: u64, reader: &mut SharedFile) -> Result<()> {
    ranges.sort_unstable();
    let overlap =
        ranges.iter().any(|r| r.1 > dir_start) || ranges.windows(2).any(|w| w[0].1 > w[1].0);
    if overlap {
        return Err(Error::CorruptArchive(
            "header inconsistency detected: archive contains overlapping entries".into(),
        ));
    }
    let mut cursor = 0;
    for &(start, end) in ranges.iter() {
        if cursor < start {
            hidden_header(reader, cursor, start)?;
        }
        cursor = cursor.max(end);
    }
    if cursor < dir_start {
        hidden_header(reader, cursor, dir_start)?;
    }
    Ok(())
}

/// Refuses a local header that fits whole in `[from, to)`.
fn hidden_header(reader: &SharedFile, from: u64, to: u64) -> Result<()> {
    const SIG: &[u8; 4] = b"PK\x03\x04";
    let unreadable =
        |e: io::Error| Error::CorruptArchive(format!("reading between the entries: {e}"));
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    while at + 30 <= to {
        let want = ((to - at) as usize).min(buf.len());
        let n = reader
            .file()
            .read_at(&mut buf[..want], at)
            .map_err(unreadable)?;
        if n < 4 {
            return Ok(());
        }
        for i in 0..=n - 4 {
            let pos = at + i as u64;
            if &buf[i..i + 4] != SIG || pos + 30 > to {
                continue;
            }
            let mut fixed = [0u8; 30];
            reader
                .file()
                .read_exact_at(&mut fixed, pos)
                .map_err(unreadable)?;
            let name = u64::from(u16::from_le_bytes([fixed[26], fixed[27]]));
            let extra = u64::from(u16::from_le_bytes([fixed[28], fixed[29]]));
            if pos + 30 + name + extra <= to {
                return Err(Error::CorruptArchive(
                    "header inconsistency detected: local file header missing from central directory"
                        .into(),
                ));
            }
        }
        // The next window starts where a signature cut in two would.
        at += (n - 3) as u64;
    }
    Ok(())
}

/// An entry name fit for a one-line message: lossily decoded, and cut
/// short when an archive uses absurdly long names.
pub(crate) fn display_name(raw: &[u8]) -> String {
    const MAX: usize = 120;
    let name = String::from_utf8_lossy(raw);
    if name.chars().count() <= MAX {
        return name.into_owned();
    }
    let head: String = name.chars().take(MAX).collect();
    format!("{head}… ({} bytes)", raw.len())
}

/// An entry name as text: UTF-8 where the bytes are valid UTF-8 (whatever
/// the flag says: Info-ZIP on Linux and macOS stores UTF-8 names without
/// it), else code page 437, the ZIP default. The zip crate reads names the
/// same way; both extraction paths use this one function. (`raw` is the
/// name after `unicode_path`.)
pub(crate) fn decode_name(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => text.into(),
        Err(_) => raw
            .iter()
            .map(|&b| match b {
                0..=0x7f => char::from(b),
                _ => CP437_HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or('?'),
            })
            .collect::<String>()
            .into(),
    }
}

/// The name an Info-ZIP Unicode Path extra field (0x7075) gives the entry
/// named `raw`, if it has a valid one: version 1, the CRC-32 of `raw`, a
/// UTF-8 name. The zip crate applies it the same way.
pub(crate) fn unicode_path(raw: &[u8], extra: &[u8]) -> Option<Vec<u8>> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if id == 0x7075 && body.len() >= 5 && body[0] == 1 {
            let crc = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
            let name = &body[5..];
            if crc == crc32fast::hash(raw) && std::str::from_utf8(name).is_ok() {
                return Some(name.to_vec());
            }
        }
        rest = &rest[4 + len..];
    }
    None
}

/// Code page 437, bytes 0x80 to 0xff.
const CP437_HIGH: &str = concat!(
    "ÇüéâäàåçêëèïîìÄÅ",
    "ÉæÆôöòûùÿÖÜ¢£¥₧ƒ",
    "áíóúñÑªº¿⌐¬½¼¡«»",
    "░▒▓│┤╡╢╖╕╣║╗╝╜╛┐",
    "└┴┬├─┼╞╟╚╔╩╦╠═╬╧",
    "╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀",
    "αßΓπΣσµτΦΘΩδ∞φε∩",
    "≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}",
);

pub(crate) fn supported(method: CompressionMethod) -> bool {
    matches!(
        method,
        CompressionMethod::Stored
            | CompressionMethod::Deflated
            | CompressionMethod::Deflate64
            | CompressionMethod::Bzip2
            | CompressionMethod::Lzma
    )
}

pub(crate) fn zip_reason(e: &ZipError) -> String {
    match e {
        ZipError::InvalidArchive(why) => why.to_string(),
        other => other.to_string(),
    }
}

/// Checks an entry name and turns it into a relative path; the flag says the
/// name ends in `/`. The rules are strict on purpose: anything an extractor
/// could read two ways is refused. `.` components (bsdtar writes `./a`) are
/// dropped, so `a` and `./a` are one path; `./` alone is the root (an empty
/// path).
pub(crate) fn check_name(name: &str) -> std::result::Result<(PathBuf, bool), String> {
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
            "." => {}
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
pub(crate) fn check_link_target(
    link: &Path,
    target: &[u8],
) -> std::result::Result<PathBuf, String> {
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

pub(crate) fn check_free_space(dest: &Path, plan: &Plan) -> Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    let Ok(stat) = rustix::fs::statvfs(parent) else {
        return Ok(()); // not all filesystems report; writing will tell
    };
    let entries = plan.paths.len() as u64;
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
        return Err(Error::NoInodes {
            path: parent.to_path_buf(),
            needed: entries,
            available: stat.f_favail,
        });
    }
    Ok(())
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
    fn names_decode_as_utf8_else_code_page_437() {
        assert_eq!(CP437_HIGH.chars().count(), 128);
        assert_eq!(decode_name(b"plain/a.txt"), "plain/a.txt");
        assert_eq!(decode_name("caf\u{e9}.txt".as_bytes()), "caf\u{e9}.txt");
        assert_eq!(decode_name(b"caf\x82.txt"), "caf\u{e9}.txt");
        assert_eq!(decode_name(b"\x80\xe1\xff"), "\u{c7}\u{df}\u{a0}");
    }

    #[test]
    fn large_files_come_first_then_the_others_in_the_order_of_the_archive() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default();
        // (name, size): small files of growing sizes in two directories,
        // taken in turn, and two large files among them.
        let files: [(&str, usize); 7] = [
            ("a/1", 10),
            ("b/2", 20),
            ("a/big", 1 << 20),
            ("a/3", 30),
            ("b/bigger", 3 << 20),
            ("b/4", 40),
            ("a/5", 50),
        ];
        for (name, size) in files {
            w.start_file(name, deflated).unwrap();
            w.write_all(&vec![b'x'; size]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.zip");
        std::fs::write(&path, w.finish().unwrap().into_inner()).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let (_, plan) = super::super::open_and_plan(&file, &path, &Limits::default()).unwrap();
        let sizes: Vec<u64> = plan.files.iter().map(|f| f.size).collect();
        assert_eq!(sizes, [3 << 20, 1 << 20, 10, 20, 30, 40, 50]);
        let small = &plan.files[2..];
        assert!(small.windows(2).all(|w| w[0].central < w[1].central));
    }

    #[test]
    fn dot_components_are_dropped_and_dot_slash_is_the_root() {
        let plain = check_name("a/b").unwrap();
        assert_eq!(check_name("./a/b").unwrap(), plain);
        assert_eq!(check_name("a/./b").unwrap(), plain);
        assert_eq!(check_name("./").unwrap(), (PathBuf::new(), true));
        assert_eq!(check_name(".").unwrap(), (PathBuf::new(), false));
        assert_eq!(check_name("./d/").unwrap(), (PathBuf::from("d"), true));
        assert!(check_name("./../x").is_err());
        assert!(check_name(".//x").is_err());
    }
}
