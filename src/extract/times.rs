//! Modification times: which of an entry's timestamps wins, and setting it.
//!
//! The rule, the same for every extraction path, so that one package gives
//! the same mtimes on every host, every time:
//!
//! 1. the NTFS extra field (0x000a: 100 ns ticks, UTC), written by 7-Zip and
//!    Windows tools;
//! 2. else the extended-timestamp extra field (0x5455: Unix seconds, UTC),
//!    written by Info-ZIP, bsdtar and Go;
//! 3. else the MS-DOS date and time, read as UTC (it has no zone; UTC is what
//!    Go, Java and the zip crate write there);
//! 4. an invalid DOS date (Go module zips store zeros) gives
//!    [`INVALID_DOS_TIME`], 1980-01-01 00:00:00 UTC, the earliest DOS time.
//!
//! Access times are set to the same value.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

/// A point in time as seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryTime {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
}

/// The time an entry gets when its DOS date is invalid and it carries no
/// other timestamp: 1980-01-01 00:00:00 UTC.
pub(crate) const INVALID_DOS_TIME: EntryTime = EntryTime {
    secs: 315_532_800,
    nanos: 0,
};

/// Seconds from 1601-01-01 (the NTFS epoch) to 1970-01-01.
const NTFS_EPOCH_OFFSET: i64 = 11_644_473_600;

/// The modification time of an entry, by the rule above, from its DOS
/// `(date, time)` fields and an extra-field block (local or central).
pub(crate) fn entry_time(dos: (u16, u16), extra: &[u8]) -> EntryTime {
    ntfs_mtime(extra)
        .or_else(|| unix_mtime(extra))
        .or_else(|| dos_time(dos.0, dos.1))
        .unwrap_or(INVALID_DOS_TIME)
}

/// The bodies of the extra fields with id `id`.
fn fields(extra: &[u8], id: u16) -> impl Iterator<Item = &[u8]> {
    let mut rest = extra;
    std::iter::from_fn(move || loop {
        if rest.len() < 4 {
            return None;
        }
        let field = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        if field == id {
            return Some(body);
        }
    })
}

/// The mtime of an extended-timestamp field (0x5455): a flags byte, then the
/// times its bits announce, mtime first (the central copy holds only that).
fn unix_mtime(extra: &[u8]) -> Option<EntryTime> {
    let body = fields(extra, 0x5455).next()?;
    if body.first()? & 1 == 0 {
        return None;
    }
    let secs = i32::from_le_bytes(body.get(1..5)?.try_into().ok()?);
    Some(EntryTime {
        secs: i64::from(secs),
        nanos: 0,
    })
}

/// The mtime of an NTFS field (0x000a): four reserved bytes, then tagged
/// attributes; tag 1 holds mtime, atime and ctime as 100 ns ticks since 1601.
fn ntfs_mtime(extra: &[u8]) -> Option<EntryTime> {
    let body = fields(extra, 0x000a).next()?;
    let mut rest = body.get(4..)?;
    while rest.len() >= 4 {
        let tag = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let attr = rest.get(4..4 + len)?;
        if tag == 1 && len >= 8 {
            let ticks = u64::from_le_bytes(attr[..8].try_into().ok()?);
            if ticks == 0 {
                return None; // unset
            }
            let secs = i64::try_from(ticks / 10_000_000).ok()? - NTFS_EPOCH_OFFSET;
            let nanos = (ticks % 10_000_000) as u32 * 100;
            return Some(EntryTime { secs, nanos });
        }
        rest = &rest[4 + len..];
    }
    None
}

/// An MS-DOS date and time taken as UTC, or `None` where it names no real
/// moment (month 0, 31 February, 25 o'clock, …).
pub(crate) fn dos_time(date: u16, time: u16) -> Option<EntryTime> {
    let year = 1980 + i64::from(date >> 9);
    let month = i64::from((date >> 5) & 0x0f);
    let day = i64::from(date & 0x1f);
    let (hour, minute, second) = (
        i64::from(time >> 11),
        i64::from((time >> 5) & 0x3f),
        i64::from(time & 0x1f) * 2,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = crate::civil::days_from_civil(year, month, day);
    Some(EntryTime {
        secs: days * 86_400 + hour * 3600 + minute * 60 + second,
        nanos: 0,
    })
}

fn timestamps(t: EntryTime) -> Timestamps {
    let spec = Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.into(),
    };
    Timestamps {
        last_access: spec,
        last_modification: spec,
    }
}

/// Sets the times of an open file.
pub(crate) fn set_file_time(file: impl AsFd, t: EntryTime) -> std::io::Result<()> {
    Ok(rustix::fs::futimens(file, &timestamps(t))?)
}

/// Sets the times of `path` itself, never of what a symlink points to.
pub(crate) fn set_path_time(path: &Path, t: EntryTime) -> std::io::Result<()> {
    Ok(rustix::fs::utimensat(
        CWD,
        path,
        &timestamps(t),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dos(y: u16, mo: u16, d: u16, h: u16, mi: u16, s: u16) -> (u16, u16) {
        (
            ((y - 1980) << 9) | (mo << 5) | d,
            (h << 11) | (mi << 5) | (s / 2),
        )
    }

    #[test]
    fn dos_times_convert_to_unix_seconds_as_utc() {
        let (date, time) = dos(2010, 9, 5, 4, 12, 0);
        assert_eq!(dos_time(date, time).unwrap().secs, 1_283_659_920);
        let (date, time) = dos(2024, 2, 29, 23, 59, 58);
        assert_eq!(dos_time(date, time).unwrap().secs, 1_709_251_198);
    }

    #[test]
    fn invalid_dos_dates_get_the_fixed_time() {
        for (date, time) in [
            (0, 0),                    // Go module zips
            dos(2021, 2, 29, 0, 0, 0), // not a leap year
            dos(2021, 13, 1, 0, 0, 0),
            dos(2021, 4, 31, 0, 0, 0),
            dos(2021, 1, 1, 24, 0, 0),
            dos(2021, 1, 1, 0, 60, 0),
            (dos(2021, 1, 1, 0, 0, 0).0, 30), // 60 seconds
        ] {
            assert_eq!(dos_time(date, time), None, "{date:#x} {time:#x}");
            assert_eq!(entry_time((date, time), &[]), INVALID_DOS_TIME);
        }
    }

    #[test]
    fn utc_extra_fields_win_over_the_dos_time() {
        let d = dos(2020, 1, 1, 12, 0, 0);
        // Info-ZIP local field: flags (mtime|atime), mtime, atime.
        let mut ut = vec![0x55, 0x54, 9, 0, 3];
        ut.extend_from_slice(&1_600_000_001i32.to_le_bytes());
        ut.extend_from_slice(&5i32.to_le_bytes());
        assert_eq!(
            entry_time(d, &ut),
            EntryTime {
                secs: 1_600_000_001,
                nanos: 0
            }
        );
        // Flags without mtime: the DOS time stands.
        let no_mtime = [0x55, 0x54, 5, 0, 2, 1, 0, 0, 0];
        assert_eq!(entry_time(d, &no_mtime), dos_time(d.0, d.1).unwrap());

        let ticks = (1_600_000_001 + NTFS_EPOCH_OFFSET) as u64 * 10_000_000 + 1234;
        let mut ntfs = vec![0x0a, 0, 32, 0, 0, 0, 0, 0, 1, 0, 24, 0];
        ntfs.extend_from_slice(&ticks.to_le_bytes());
        ntfs.extend_from_slice(&[0; 16]);
        let expected = EntryTime {
            secs: 1_600_000_001,
            nanos: 123_400,
        };
        assert_eq!(entry_time(d, &ntfs), expected);
        // NTFS wins over the extended timestamp, whichever comes first.
        let mut both = ut.clone();
        both.extend_from_slice(&ntfs);
        assert_eq!(entry_time(d, &both), expected);
        // A truncated field is ignored.
        assert_eq!(entry_time(d, &ut[..6]), dos_time(d.0, d.1).unwrap());
    }
}
