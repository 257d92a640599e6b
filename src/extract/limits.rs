//! Limits on the shape of an archive, checked before anything is allocated
//! for it or created from it.
//!
//! * Paths: an entry name deeper than [`Limits::max_path_depth`] components
//!   or longer than [`Limits::max_path_length`] bytes is refused by the
//!   planner and by the streaming walker alike, before any directory exists.
//!   A tree too deep cannot be removed with a bounded number of descriptors,
//!   and its names cost memory in proportion to depth × length.
//! * The central directory: the zip crate parses all of it into memory
//!   before anyone can look at an entry. [`check_central_directory`] reads
//!   the end record (and its ZIP64 form) first and refuses an entry count
//!   over the limit, or one the archive is too small to hold, then walks the
//!   records in constant memory and refuses extra fields and comments over
//!   [`Limits::max_metadata`]: what the parser would otherwise keep for the
//!   whole extraction.

use std::io::{self, Read, Seek, SeekFrom};

use super::plan::display_name;
use super::Limits;
use crate::error::{Error, Limit, Result};

/// Smallest central directory record (signature and fixed fields).
const CENTRAL_RECORD: u64 = 46;
/// End of central directory record without its comment.
const END_RECORD: u64 = 22;
/// The ZIP64 end record locator, just before the end record.
const ZIP64_LOCATOR: u64 = 20;
/// The fixed part of the ZIP64 end record.
const ZIP64_END_RECORD: u64 = 56;
/// Memory the zip crate spends on each extra field beyond its bytes (one
/// parsed `ExtraField`); charged to [`Limits::max_metadata`] so that many
/// empty fields cost what they take.
pub(crate) const EXTRA_FIELD_COST: u64 = 32;

pub(crate) const CENTRAL_SIG: [u8; 4] = *b"PK\x01\x02";
const END_SIG: [u8; 4] = *b"PK\x05\x06";
const ZIP64_END_SIG: [u8; 4] = *b"PK\x06\x06";
const ZIP64_LOCATOR_SIG: [u8; 4] = *b"PK\x06\x07";

/// Refuses an entry name deeper or longer than the limits allow. `name` is
/// the name as extracted (a trailing `/` marks a directory and is not a
/// component); `shown` names the entry in the error.
pub(crate) fn check_path(name: &[u8], limits: &Limits) -> Result<()> {
    let body = name.strip_suffix(b"/").unwrap_or(name);
    let depth = body.split(|&b| b == b'/').count() as u64;
    let over = |limit, max, actual| Error::LimitExceeded {
        limit,
        max,
        actual,
        entry: Some(display_name(name)),
    };
    if depth > limits.max_path_depth {
        return Err(over(Limit::PathDepth, limits.max_path_depth, depth));
    }
    let length = body.len() as u64;
    if length > limits.max_path_length {
        return Err(over(Limit::PathLength, limits.max_path_length, length));
    }
    Ok(())
}

/// What the last end of central directory record declares (ZIP64 values
/// where the archive has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndRecord {
    /// Offset of the end record in the file.
    pub(crate) at: u64,
    pub(crate) entries: u64,
    pub(crate) size: u64,
    pub(crate) offset: u64,
}

/// Checks the central directory against the limits before the zip crate
/// parses it: the declared entry count, that the archive can hold that many
/// records, and the records' metadata. Anything this pass cannot
/// make sense of is left for the zip crate to report; it only ever refuses
/// with a limit or an impossible size.
pub(crate) fn check_central_directory<R: Read + Seek>(
    reader: &mut R,
    limits: &Limits,
) -> Result<()> {
    let checked = check(reader, limits);
    let rewound = reader.seek(SeekFrom::Start(0));
    match (checked, rewound) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(Error::CorruptArchive(format!("seeking the archive: {e}"))),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

fn check<R: Read + Seek>(reader: &mut R, limits: &Limits) -> Result<()> {
    let len = reader.seek(SeekFrom::End(0)).map_err(unreadable)?;
    let Some(end) = end_record(reader, len).map_err(unreadable)? else {
        return Ok(()); // no end record: the zip crate says what this is
    };
    if end.entries > limits.max_entries {
        return Err(Error::LimitExceeded {
            limit: Limit::Entries,
            max: limits.max_entries,
            actual: end.entries,
            entry: None,
        });
    }
    let needed = end.entries.saturating_mul(CENTRAL_RECORD);
    if end.size > end.at || needed > end.at {
        return Err(Error::CorruptArchive(format!(
            "the end of central directory record declares {} entries in {} bytes, \
             but only {} bytes precede it",
            end.entries, end.size, end.at
        )));
    }
    // Where the records are: at the declared offset, or (bytes prepended to
    // the archive) right before the end record.
    for start in [end.offset, end.at - end.size] {
        if signature_at(reader, start).map_err(unreadable)? == CENTRAL_SIG {
            return check_records(reader, start, end.entries, limits);
        }
    }
    Ok(())
}

fn unreadable(e: io::Error) -> Error {
    Error::CorruptArchive(format!("reading the central directory: {e}"))
}

/// Finds the last end record in the file's final 64 KiB (where the zip crate
/// looks first) and its ZIP64 counterpart.
pub(crate) fn end_record<R: Read + Seek>(
    reader: &mut R,
    len: u64,
) -> io::Result<Option<EndRecord>> {
    if len < END_RECORD {
        return Ok(None);
    }
    let tail_start = len.saturating_sub(END_RECORD + u64::from(u16::MAX));
    let mut tail = vec![0u8; (len - tail_start) as usize];
    reader.seek(SeekFrom::Start(tail_start))?;
    reader.read_exact(&mut tail)?;
    let Some(i) = (0..=tail.len() - END_RECORD as usize)
        .rev()
        .find(|&i| tail[i..i + 4] == END_SIG)
    else {
        return Ok(None);
    };
    let r = &tail[i..i + END_RECORD as usize];
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([r[at], r[at + 1]]));
    let u32_at =
        |at: usize| u64::from(u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]));
    let mut end = EndRecord {
        at: tail_start + i as u64,
        entries: u16_at(10).max(u16_at(8)),
        size: u32_at(12),
        offset: u32_at(16),
    };
    match zip64_end_record(reader, end.at)? {
        Some(zip64) => end = zip64,
        // Fields that say "see ZIP64" without a ZIP64 record this pass can
        // find: nothing to check them against; the zip crate decides.
        None if end.size == u64::from(u32::MAX) || end.offset == u64::from(u32::MAX) => {
            return Ok(None)
        }
        None => {}
    }
    Ok(Some(end))
}

/// The ZIP64 end record the locator before the end record at `at` points
/// to, if there is one.
fn zip64_end_record<R: Read + Seek>(reader: &mut R, at: u64) -> io::Result<Option<EndRecord>> {
    let Some(locator_at) = at.checked_sub(ZIP64_LOCATOR) else {
        return Ok(None);
    };
    let mut locator = [0u8; ZIP64_LOCATOR as usize];
    reader.seek(SeekFrom::Start(locator_at))?;
    reader.read_exact(&mut locator)?;
    if locator[..4] != ZIP64_LOCATOR_SIG {
        return Ok(None);
    }
    let declared = u64_at(&locator, 8);
    // At the declared offset, or right before the locator (bytes prepended).
    for record_at in [Some(declared), locator_at.checked_sub(ZIP64_END_RECORD)] {
        let Some(record_at) = record_at.filter(|&r| r < locator_at) else {
            continue;
        };
        let mut r = [0u8; ZIP64_END_RECORD as usize];
        reader.seek(SeekFrom::Start(record_at))?;
        if reader.read_exact(&mut r).is_err() || r[..4] != ZIP64_END_SIG {
            continue;
        }
        return Ok(Some(EndRecord {
            at: record_at,
            entries: u64_at(&r, 32).max(u64_at(&r, 24)),
            size: u64_at(&r, 40),
            offset: u64_at(&r, 48),
        }));
    }
    Ok(None)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

pub(crate) fn signature_at<R: Read + Seek>(reader: &mut R, at: u64) -> io::Result<[u8; 4]> {
    let mut sig = [0u8; 4];
    reader.seek(SeekFrom::Start(at))?;
    match reader.read_exact(&mut sig) {
        Ok(()) => Ok(sig),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok([0; 4]),
        Err(e) => Err(e),
    }
}

/// Walks `entries` central records from `start`, holding one name and one
/// extra field at a time. Stops quietly at anything that is not a record.
fn check_records<R: Read + Seek>(
    reader: &mut R,
    start: u64,
    entries: u64,
    limits: &Limits,
) -> Result<()> {
    reader.seek(SeekFrom::Start(start)).map_err(unreadable)?;
    let mut name = Vec::new();
    let mut extra = Vec::new();
    let mut metadata = 0u64;
    for _ in 0..entries {
        let mut fixed = [0u8; CENTRAL_RECORD as usize];
        if reader.read_exact(&mut fixed).is_err() || fixed[..4] != CENTRAL_SIG {
            return Ok(());
        }
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        name.resize(name_len, 0);
        extra.resize(extra_len, 0);
        if reader.read_exact(&mut name).is_err() || reader.read_exact(&mut extra).is_err() {
            return Ok(());
        }
        metadata += (extra_len + comment_len) as u64 + EXTRA_FIELD_COST * extra_fields(&extra);
        if metadata > limits.max_metadata {
            return Err(Error::LimitExceeded {
                limit: Limit::Metadata,
                max: limits.max_metadata,
                actual: metadata,
                entry: Some(display_name(&name)),
            });
        }
        reader
            .seek(SeekFrom::Current(comment_len as i64))
            .map_err(unreadable)?;
    }
    Ok(())
}

/// How many fields an extra field block holds (a truncated last one counts).
fn extra_fields(mut extra: &[u8]) -> u64 {
    let mut count = 0;
    while extra.len() >= 4 {
        count += 1;
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        extra = extra.get(4 + len..).unwrap_or_default();
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn limits() -> Limits {
        Limits {
            max_path_depth: 3,
            max_path_length: 10,
            ..Limits::default()
        }
    }

    #[test]
    fn paths_are_limited_in_depth_and_length() {
        assert!(check_path(b"a/b/c", &limits()).is_ok());
        assert!(
            check_path(b"a/b/c/", &limits()).is_ok(),
            "a directory's '/'"
        );
        assert!(check_path(b"0123456789", &limits()).is_ok());
        let err = check_path(b"a/b/c/d", &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "path depth limit exceeded: 4 > 3 (entry \"a/b/c/d\")"
        );
        let err = check_path(b"0123456789a", &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "path length limit exceeded: 11 > 10 (entry \"0123456789a\")"
        );
    }

    #[test]
    fn extra_fields_are_counted() {
        assert_eq!(extra_fields(b""), 0);
        assert_eq!(extra_fields(b"\x01\x00\x00\x00"), 1);
        assert_eq!(extra_fields(b"\x01\x00\x02\x00ab\x07\x00\x00\x00"), 2);
        assert_eq!(extra_fields(b"\x01\x00\xff\x00ab"), 1, "truncated");
    }

    /// An end record declaring `entries` in `size` bytes at `offset`, after
    /// `before` bytes of something else.
    fn end_only(before: usize, entries: u16, size: u32, offset: u32) -> Vec<u8> {
        let mut z = vec![0u8; before];
        z.extend_from_slice(&END_SIG);
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&entries.to_le_bytes());
        z.extend_from_slice(&entries.to_le_bytes());
        z.extend_from_slice(&size.to_le_bytes());
        z.extend_from_slice(&offset.to_le_bytes());
        z.extend_from_slice(&[0; 2]);
        z
    }

    #[test]
    fn the_end_record_is_checked_before_the_records() {
        let few = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let err = check_central_directory(&mut Cursor::new(end_only(0, 11, 0, 0)), &few);
        assert!(
            matches!(
                err,
                Err(Error::LimitExceeded {
                    limit: Limit::Entries,
                    actual: 11,
                    ..
                })
            ),
            "{err:?}"
        );
        // 1,000 records need 46,000 bytes; there are 100.
        let err = check_central_directory(
            &mut Cursor::new(end_only(100, 1000, 100, 0)),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("declares 1000 entries"), "{err}");
        // No end record at all: for the zip crate to name.
        assert!(check_central_directory(&mut Cursor::new(b"hello".to_vec()), &few).is_ok());
    }
}
