//! Reserving a file's blocks before writing it, when its final length is
//! known: the download (its announced length) and large extracted files
//! (their declared sizes, streamed or from a complete package; not in a
//! durable deploy).
//!
//! On ext4, a write into blocks not yet allocated (delayed allocation)
//! reserves and tracks every 4 KiB block on its own; into blocks reserved
//! by one `fallocate` it does not. Measured here on 392 MiB written in
//! 256 KiB pieces: 62 ms of CPU instead of 92, the reservation included.
//! Files under [`MIN_LEN`] are not worth the extra call. Deploying the
//! benchmark's assets package (600 MiB in 40 files) from a local path took
//! 0.94x the time without (paired rounds), 60 ms less CPU.

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
