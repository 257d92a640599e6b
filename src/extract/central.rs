//! The central directory read one record at a time, into buffers reused
//! from record to record: memory does not grow with the entry count.
//!
//! Planning walks the directory with the zip crate's [`zip::read::ZipIterable`],
//! which finds it, parses every record and checks each against its local
//! header, and reads every record a second time with [`Record::read`],
//! refusing the archive where the two readings differ. Every later pass
//! (creating directories, writing files, symlinks, directory times, the
//! streaming check) reads the records again with [`Record::read`]: nothing
//! per entry is kept but what [`super::plan::Plan`] says it keeps.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use super::limits::{end_record, signature_at, CENTRAL_SIG};
use super::plan::unicode_path;
use super::times::{entry_time, EntryTime};
use crate::error::Error;

/// Signature and fixed fields of a central record.
const FIXED: usize = 46;
const SIGNATURE: [u8; 4] = *b"PK\x01\x02";

/// One central directory record. The buffers are reused by the next
/// [`Record::read`].
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// Offset of the record in the archive.
    pub(crate) at: u64,
    /// Offset of the record after this one.
    pub(crate) next: u64,
    /// The "version made by" field: its high byte is the host system.
    pub(crate) made_by: u16,
    pub(crate) flags: u16,
    pub(crate) method: u16,
    /// MS-DOS `(date, time)`.
    pub(crate) dos: (u16, u16),
    pub(crate) crc: u32,
    pub(crate) compressed: u64,
    pub(crate) size: u64,
    pub(crate) external: u32,
    /// Offset of the local header, before any offset of the whole archive
    /// (bytes prepended to it) is added.
    pub(crate) header: u64,
    /// The name as the zip crate gives it: an Info-ZIP Unicode Path extra
    /// field applied.
    pub(crate) name: Vec<u8>,
    pub(crate) extra: Vec<u8>,
}

impl Record {
    /// Reads the record at `at` from `reader`.
    pub(crate) fn read<R: Read + Seek>(&mut self, reader: &mut R, at: u64) -> io::Result<()> {
        let mut fixed = [0u8; FIXED];
        reader.seek(SeekFrom::Start(at))?;
        reader.read_exact(&mut fixed)?;
        if fixed[..4] != SIGNATURE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no central directory record at its offset",
            ));
        }
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap());
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        self.name.resize(usize::from(name_len), 0);
        self.extra.resize(usize::from(extra_len), 0);
        reader.read_exact(&mut self.name)?;
        reader.read_exact(&mut self.extra)?;
        self.at = at;
        self.next = at + (FIXED as u64) + u64::from(name_len) + u64::from(extra_len);
        self.next += u64::from(comment_len);
        self.made_by = u16_at(4);
        self.flags = u16_at(8);
        self.method = u16_at(10);
        self.dos = (u16_at(14), u16_at(12));
        self.crc = u32_at(16);
        self.compressed = u64::from(u32_at(20));
        self.size = u64::from(u32_at(24));
        self.external = u32_at(38);
        self.header = u64::from(u32_at(42));
        self.apply_zip64();
        if let Some(name) = unicode_path(&self.name, &self.extra) {
            self.name = name;
        }
        Ok(())
    }

    /// Takes the sizes and offset a ZIP64 extra field holds where the fixed
    /// fields say so.
    fn apply_zip64(&mut self) {
        let Some(body) = extra_field(&self.extra, 0x0001) else {
            return;
        };
        let mut values = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        for field in [&mut self.size, &mut self.compressed, &mut self.header] {
            if *field == u64::from(u32::MAX) {
                match values.next() {
                    Some(v) => *field = v,
                    None => return,
                }
            }
        }
    }

    /// The permission and type bits, where a Unix host wrote the record and
    /// set them.
    pub(crate) fn unix_mode(&self) -> Option<u32> {
        const UNIX: u16 = 3;
        (self.made_by >> 8 == UNIX)
            .then_some(self.external >> 16)
            .filter(|m| *m != 0)
    }

    /// The modification time, by the rule of `times.rs`.
    pub(crate) fn mtime(&self) -> EntryTime {
        entry_time(self.dos, &self.extra)
    }

    pub(crate) fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// The body of the first extra field with id `id`.
pub(crate) fn extra_field(extra: &[u8], id: u16) -> Option<&[u8]> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let field = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if field == id {
            return Some(body);
        }
        rest = &rest[4 + len..];
    }
    None
}

/// Where the records are: the first one, their number, and the offset of
/// the whole archive within the file (bytes prepended to it), as planning
/// found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directory {
    pub(crate) start: u64,
    pub(crate) entries: u64,
    pub(crate) archive_offset: u64,
    /// The index and offset of the record halfway, once planning has read
    /// them all: two threads can then walk one half each.
    pub(crate) middle: Option<(usize, u64)>,
}

/// A run of consecutive records: the offset of the first, and their
/// indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Records {
    pub(crate) at: u64,
    pub(crate) indices: Range<usize>,
}

impl Directory {
    /// Finds the records from the end record (and its ZIP64 form): at the
    /// offset it declares, or, where bytes were prepended to the archive
    /// (a launcher script), right before it, every offset shifted by as
    /// many bytes.
    pub(crate) fn find<R: Read + Seek>(reader: &mut R, len: u64) -> Result<Directory, String> {
        let unreadable = |e: io::Error| format!("reading the end of central directory record: {e}");
        let end = end_record(reader, len)
            .map_err(unreadable)?
            .ok_or("no end of central directory record (EOCD) found")?;
        let start = end
            .at
            .checked_sub(end.size)
            .ok_or("the central directory would start before the file")?;
        if end.entries == 0 {
            return Ok(Directory {
                start,
                entries: 0,
                archive_offset: 0,
                middle: None,
            });
        }
        for (at, archive_offset) in [(end.offset, 0), (start, start.wrapping_sub(end.offset))] {
            if signature_at(reader, at).map_err(unreadable)? == CENTRAL_SIG {
                return Ok(Directory {
                    start: at,
                    entries: end.entries,
                    archive_offset,
                    middle: None,
                });
            }
        }
        Err("no central directory record where the end record points".into())
    }

    /// All the records.
    pub(crate) fn all(&self) -> Records {
        Records {
            at: self.start,
            indices: 0..self.entries as usize,
        }
    }

    /// The records in two halves, where planning noted the middle.
    pub(crate) fn halves(&self) -> Option<[Records; 2]> {
        let (index, at) = self.middle?;
        Some([
            Records {
                at: self.start,
                indices: 0..index,
            },
            Records {
                at,
                indices: index..self.entries as usize,
            },
        ])
    }

    /// Calls `each` with every record in order, read into one reused
    /// [`Record`] (its `header` with the archive offset added).
    pub(crate) fn each<R, E>(
        &self,
        reader: &mut R,
        each: impl FnMut(usize, &Record, &mut R) -> Result<(), E>,
    ) -> Result<(), E>
    where
        R: Read + Seek,
        E: From<Error>,
    {
        self.each_of(self.all(), reader, each)
    }

    /// [`Directory::each`] over the run `records`.
    pub(crate) fn each_of<R, E>(
        &self,
        records: Records,
        reader: &mut R,
        mut each: impl FnMut(usize, &Record, &mut R) -> Result<(), E>,
    ) -> Result<(), E>
    where
        R: Read + Seek,
        E: From<Error>,
    {
        let mut record = Record::default();
        let mut at = records.at;
        for index in records.indices {
            record.read(reader, at).map_err(|e| {
                Error::CorruptArchive(format!("central directory record #{index}: {e}"))
            })?;
            record.header += self.archive_offset;
            at = record.next;
            each(index, &record, reader)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn record(name: &[u8], extra: &[u8], sizes: [u32; 3]) -> Vec<u8> {
        let mut r = SIGNATURE.to_vec();
        r.extend_from_slice(&[0x14, 3, 20, 0, 8, 0, 8, 0]); // made by Unix, flags 8, deflated
        r.extend_from_slice(&[0x21, 0x5b, 0x21, 0x5b]); // time, date
        r.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        r.extend_from_slice(&sizes[0].to_le_bytes()); // compressed
        r.extend_from_slice(&sizes[1].to_le_bytes()); // size
        r.extend_from_slice(&(name.len() as u16).to_le_bytes());
        r.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        r.extend_from_slice(&3u16.to_le_bytes()); // comment
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        r.extend_from_slice(&sizes[2].to_le_bytes()); // local header offset
        r.extend_from_slice(name);
        r.extend_from_slice(extra);
        r.extend_from_slice(b"hey");
        r
    }

    #[test]
    fn records_are_read_with_their_zip64_fields() {
        let mut zip64 = vec![1, 0, 16, 0];
        zip64.extend_from_slice(&5_000_000_000u64.to_le_bytes()); // size
        zip64.extend_from_slice(&6_000_000_000u64.to_le_bytes()); // offset
        let mut bytes = vec![0u8; 7];
        bytes.extend(record(b"a/b.txt", &zip64, [10, u32::MAX, u32::MAX]));
        let second = bytes.len() as u64;
        bytes.extend(record(b"c", b"", [1, 2, 3]));
        let mut r = Record::default();
        r.read(&mut Cursor::new(&bytes), 7).unwrap();
        assert_eq!(r.name, b"a/b.txt");
        assert_eq!(
            (r.compressed, r.size, r.header),
            (10, 5_000_000_000, 6_000_000_000)
        );
        assert_eq!((r.method, r.flags, r.crc), (8, 8, 0xdead_beef));
        assert_eq!(r.unix_mode(), Some(0o100644));
        assert_eq!(r.next, second);
        r.read(&mut Cursor::new(&bytes), second).unwrap();
        assert_eq!(
            (r.name.as_slice(), r.compressed, r.size, r.header),
            (&b"c"[..], 1, 2, 3)
        );
        assert!(r.read(&mut Cursor::new(&bytes), 8).is_err(), "not a record");

        let dir = Directory {
            start: 7,
            entries: 2,
            archive_offset: 100,
            middle: Some((1, second)),
        };
        let mut seen = Vec::new();
        dir.each(&mut Cursor::new(&bytes), |i, r, _| {
            seen.push((i, r.name.clone(), r.header));
            Ok::<(), Error>(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (0, b"a/b.txt".to_vec(), 6_000_000_100),
                (1, b"c".to_vec(), 103)
            ]
        );
        let [first, last] = dir.halves().unwrap();
        let mut halves = Vec::new();
        for half in [first, last] {
            dir.each_of(half, &mut Cursor::new(&bytes), |i, r, _| {
                halves.push((i, r.name.clone()));
                Ok::<(), Error>(())
            })
            .unwrap();
        }
        assert_eq!(halves, [(0, b"a/b.txt".to_vec()), (1, b"c".to_vec())]);
    }
}
