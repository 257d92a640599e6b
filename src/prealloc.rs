//! Reserving a file's blocks before writing it, when its final length is
//! known: the download (its announced length) and the large files streaming
//! extracts (their declared sizes).
//!
//! On ext4, a write into blocks not yet allocated (delayed allocation)
//! reserves and tracks every 4 KiB block on its own; into blocks reserved
//! by one `fallocate` it does not. Measured here on 392 MiB written in
//! 256 KiB pieces: 62 ms of CPU instead of 92, the reservation included.
//! Files under [`MIN_LEN`] are not worth the extra call.

use std::fs::File;

use rustix::fs::FallocateFlags;

/// Fewest bytes worth reserving.
pub(crate) const MIN_LEN: u64 = 1 << 20;

/// Reserves the blocks of `file` from `offset` for `len` bytes (if at least
/// [`MIN_LEN`]), leaving its length as it is (the length still says how
/// much was written: a cut download is resumed from it). Returns whether
/// the blocks are reserved; a filesystem without `fallocate`, or one too
/// full, is simply written as usual (the writes then report what is wrong).
pub(crate) fn reserve(file: &File, offset: u64, len: u64) -> bool {
    len >= MIN_LEN && rustix::fs::fallocate(file, FallocateFlags::KEEP_SIZE, offset, len).is_ok()
}
