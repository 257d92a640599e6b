//! Planning: the checks that run on the central directory before a byte is
//! written, and the rules for names and link targets that every extraction
//! path (after the download, or while it streams) applies.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::dirs::{DirTimes, Dirs};
use super::limits::check_path;
use super::times::{entry_time, EntryTime};
use super::{Limits, SharedFile};
use crate::error::{Error, Limit, Result};

/// Longest symlink target accepted.
pub(crate) const MAX_LINK_TARGET: u64 = 4096;
/// Longest file name component most filesystems accept.
const MAX_COMPONENT: usize = 255;
/// Entries smaller than this are never refused for their ratio.
const RATIO_MIN_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry to write: index in the archive, checked relative path.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) mode: Option<u32>,
    /// Modification time, by the rule of `times.rs`.
    pub(crate) mtime: EntryTime,
}

/// The checked plan of an archive: what to create, in which order.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Every directory to create, explicit or implied, parents first.
    pub(crate) dirs: Dirs,
    /// Permission bits the archive gives its directories.
    pub(crate) dir_modes: Vec<(PathBuf, u32)>,
    /// Every directory's modification time: its entry's, or for one the
    /// archive does not list, the newest time of anything below it.
    pub(crate) dir_times: DirTimes,
    pub(crate) files: Vec<Planned>,
    pub(crate) symlinks: Vec<Planned>,
    pub(crate) total_size: u64,
}

impl Plan {
    /// Plans `zip`; `central` reads the same file (for the raw central
    /// directory records, whose extra fields hold the UTC timestamps).
    pub(crate) fn new(
        zip: &mut ZipArchive<SharedFile>,
        central: &mut SharedFile,
        limits: &Limits,
    ) -> Result<Plan> {
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
        let mut explicit_dirs = Vec::new();
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
            let decoded = decode_name(raw);
            let (path, named_dir) = check_name(&decoded).map_err(|r| unsafe_entry(&r))?;
            check_path(path.as_os_str().as_encoded_bytes(), limits)?;
            let mode = (entry.system() == zip::System::Unix)
                .then(|| entry.external_attributes() >> 16)
                .filter(|m| *m != 0);
            let size = entry.size();
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
            if path.as_os_str().is_empty() {
                // `./` (bsdtar's `-C dir .`): the root itself, which the
                // archive cannot describe; it adds nothing.
                if kind != Kind::Dir {
                    return Err(unsafe_entry(
                        "names the root directory but is not a directory",
                    ));
                }
                continue;
            }
            if let Some(previous) = kinds.insert(path.clone(), kind) {
                return Err(Error::CorruptArchive(if previous == kind {
                    format!("duplicate entry {name:?}")
                } else {
                    format!("entry {name:?}: a file and a directory (or link) share this name")
                }));
            }
            let perm = mode.map(|m| m & 0o777);
            let dos = entry
                .last_modified()
                .map_or((0, 0), |t| (t.datepart(), t.timepart()));
            let extra = central_extra(central, entry.central_header_start()).map_err(|e| {
                Error::CorruptArchive(format!("entry {name:?}: central directory record: {e}"))
            })?;
            let planned = Planned {
                index,
                name,
                path,
                size,
                mode: perm,
                mtime: entry_time(dos, &extra),
            };
            match kind {
                Kind::Dir => {
                    if let Some(m) = perm {
                        plan.dir_modes.push((planned.path.clone(), m));
                    }
                    plan.dir_times.list(&planned.path, planned.mtime);
                    explicit_dirs.push(planned.path);
                }
                Kind::File => plan.files.push(planned),
                Kind::Symlink => plan.symlinks.push(planned),
            }
        }
        plan.dirs = check_ancestors(&plan, explicit_dirs, &kinds, limits)?;
        // A directory the archive does not list takes the newest time below
        // it: deterministic, and what a build that wrote the tree would show.
        for entry in plan.files.iter().chain(&plan.symlinks) {
            plan.dir_times.below(&entry.path, entry.mtime);
        }
        for dir in &plan.dirs {
            if let Some(time) = plan.dir_times.listed(&dir) {
                plan.dir_times.below(&dir, time);
            }
        }
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

/// Collects the directories to create and checks that every ancestor of
/// every entry is a real directory: never a file, never a link. Directories
/// the archive only implies count as entries.
fn check_ancestors(
    plan: &Plan,
    explicit_dirs: Vec<PathBuf>,
    kinds: &HashMap<PathBuf, Kind>,
    limits: &Limits,
) -> Result<Dirs> {
    let mut leaves = explicit_dirs;
    let others = plan.files.iter().chain(&plan.symlinks);
    for parent in others.filter_map(|p| p.path.parent()) {
        // Siblings are usually listed together: one parent for them all.
        if leaves.last().is_none_or(|last| last != parent) {
            leaves.push(parent.to_path_buf());
        }
    }
    let not_dirs = (plan.files.len() + plan.symlinks.len()) as u64;
    let room = limits.max_entries.saturating_sub(not_dirs);
    let dirs = Dirs::new(leaves, room).map_err(|dirs| Error::LimitExceeded {
        limit: Limit::Entries,
        max: limits.max_entries,
        actual: not_dirs + dirs,
        entry: None,
    })?;
    for dir in &dirs {
        let kind = match kinds.get(&dir) {
            None | Some(Kind::Dir) => continue,
            Some(kind) => *kind,
        };
        // Name an entry below it (a linear search, on this error only).
        let below = kinds
            .keys()
            .filter(|p| p.starts_with(&dir) && **p != dir)
            .min()
            .map_or_else(String::new, |p| p.display().to_string());
        let dir = dir.display().to_string();
        return Err(if kind == Kind::File {
            Error::CorruptArchive(format!("entry {below:?} is below {dir:?}, which is a file"))
        } else {
            Error::UnsafeEntry {
                entry: below,
                reason: format!("would be written through the symlink {dir:?}"),
            }
        });
    }
    Ok(dirs)
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

/// The extra fields of the central directory record at `offset`.
fn central_extra(central: &mut SharedFile, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut fixed = [0u8; 46];
    central.seek(SeekFrom::Start(offset))?;
    central.read_exact(&mut fixed)?;
    let name_len = usize::from(u16::from_le_bytes([fixed[28], fixed[29]]));
    let extra_len = usize::from(u16::from_le_bytes([fixed[30], fixed[31]]));
    let mut record = vec![0u8; name_len + extra_len];
    central.read_exact(&mut record)?;
    if fixed[..4] != 0x0201_4b50u32.to_le_bytes() {
        return Err(std::io::Error::other("no record at its offset"));
    }
    Ok(record.split_off(name_len))
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
