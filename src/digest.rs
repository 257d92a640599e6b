//! SHA-256 digests: parsing what callers give, hashing what is written.
//!
//! The fetch stage hashes bytes as it writes them ([`HashingWriter`]), so the
//! package is read from the network exactly once; this module only parses and
//! compares the result.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A SHA-256 digest.
///
/// Parses from 64 hex digits, optionally prefixed with `sha256:` (as OCI and
/// many CI systems write it), case-insensitive, surrounding whitespace ignored.
///
/// ```
/// use zipdeploy::Sha256Digest;
/// let d: Sha256Digest = "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
///     .parse()?;
/// assert_eq!(d, Sha256Digest::of(b""));
/// assert_eq!(d.to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// # Ok::<(), zipdeploy::Error>(())
/// ```
#[derive(Clone, Copy, Eq)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// The digest of everything `state` was given.
    pub(crate) fn of_state(state: Sha256) -> Self {
        Sha256Digest(state.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }
}

/// Constant-time comparison: a remote attacker learns nothing from timing.
impl PartialEq for Sha256Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::hash::Hash for Sha256Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl FromStr for Sha256Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let trimmed = s.trim();
        let hex = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        if hex.len() != 64 {
            return Err(Error::InvalidDigest(format!(
                "expected 64 hex digits, got {} characters",
                hex.len()
            )));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let nibble = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(Error::InvalidDigest(format!(
                    "non-hex character {:?} at position {}",
                    c as char,
                    i * 2
                ))),
            };
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// A writer that hashes and counts everything written through it.
///
/// Past the first MiB the hashing moves to a helper thread fed through a
/// short queue of buffers, so that hashing a large package overlaps writing
/// it instead of adding to it; small packages never start a thread.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

/// Bytes hashed inline before the helper thread takes over.
const INLINE_LIMIT: u64 = 1 << 20;

enum Hasher {
    Inline(Sha256),
    Threaded(HashThread),
}

/// What the writer sends the hashing thread.
enum Chunk {
    /// Bytes to hash: the buffer's first `usize` bytes.
    Data(Vec<u8>, usize),
    Reset,
}

/// A hashing thread, its queue, and buffers it hands back for reuse.
struct HashThread {
    chunks: SyncSender<Chunk>,
    spare: Receiver<Vec<u8>>,
    thread: JoinHandle<Sha256>,
}

impl HashThread {
    /// Continues `state` on a new thread; `None` if no thread can start.
    fn start(state: Sha256) -> Option<HashThread> {
        let (chunks, queue) = sync_channel::<Chunk>(4);
        let (give_back, spare) = sync_channel::<Vec<u8>>(4);
        let thread = std::thread::Builder::new()
            .name("zipdeploy-sha256".into())
            .spawn(move || {
                let mut state = state;
                for chunk in queue {
                    match chunk {
                        Chunk::Data(buf, len) => {
                            state.update(&buf[..len]);
                            let _ = give_back.try_send(buf);
                        }
                        Chunk::Reset => state = Sha256::new(),
                    }
                }
                state
            })
            .ok()?;
        Some(HashThread {
            chunks,
            spare,
            thread,
        })
    }

    fn update(&self, bytes: &[u8]) {
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        let len = buf.len();
        self.update_owned(buf, len);
    }

    /// Hashes `buf[..len]`, handing `buf` itself over (no copy).
    fn update_owned(&self, buf: Vec<u8>, len: usize) {
        // The thread only stops when this side hangs up.
        let _ = self.chunks.send(Chunk::Data(buf, len));
    }

    fn finish(self) -> Sha256 {
        drop(self.chunks);
        self.thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::Inline(Sha256::new()),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Forgets everything hashed so far (used when a download restarts).
    pub(crate) fn reset(&mut self) {
        match &mut self.hasher {
            Hasher::Inline(state) => *state = Sha256::new(),
            Hasher::Threaded(thread) => {
                let _ = thread.chunks.send(Chunk::Reset);
            }
        }
        self.written = 0;
    }

    /// Hashes and counts `bytes` that the wrapped writer already holds (a
    /// download resumed from the file an earlier run left), without writing
    /// them again.
    pub(crate) fn absorb(&mut self, bytes: &[u8]) {
        self.hash(bytes);
        self.written += bytes.len() as u64;
    }

    /// Mutable access to the wrapped writer.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The digest of everything written, and the writer.
    pub fn finish(self) -> (Sha256Digest, W) {
        let state = match self.hasher {
            Hasher::Inline(state) => state,
            Hasher::Threaded(thread) => thread.finish(),
        };
        (Sha256Digest::of_state(state), self.inner)
    }

    /// Writes `buffer[..len]` to the wrapped writer and hashes it. On the
    /// helper thread, the buffer itself is handed over rather than copied
    /// (a copy of every byte of a large download saved); returns a buffer
    /// to read the next bytes into, when one is free.
    pub(crate) fn write_buffer(
        &mut self,
        buffer: Vec<u8>,
        len: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        self.inner.write_all(&buffer[..len])?;
        let spare = match self.hasher() {
            Hasher::Inline(state) => {
                state.update(&buffer[..len]);
                Some(buffer)
            }
            Hasher::Threaded(thread) => {
                thread.update_owned(buffer, len);
                thread.spare.try_recv().ok()
            }
        };
        self.written += len as u64;
        Ok(spare)
    }

    fn hash(&mut self, bytes: &[u8]) {
        match self.hasher() {
            Hasher::Inline(state) => state.update(bytes),
            Hasher::Threaded(thread) => thread.update(bytes),
        }
    }

    /// The hasher for the next bytes: past [`INLINE_LIMIT`], the helper
    /// thread (started then).
    fn hasher(&mut self) -> &mut Hasher {
        if let Hasher::Inline(state) = &mut self.hasher {
            if self.written >= INLINE_LIMIT {
                let state = std::mem::take(state);
                match HashThread::start(state.clone()) {
                    Some(thread) => self.hasher = Hasher::Threaded(thread),
                    None => self.hasher = Hasher::Inline(state),
                }
            }
        }
        &mut self.hasher
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_plain_prefixed_and_upper_case_hex() {
        let plain: Sha256Digest = EMPTY.parse().unwrap();
        let prefixed: Sha256Digest = format!("sha256:{EMPTY}").parse().unwrap();
        let upper: Sha256Digest = format!("  {}\n", EMPTY.to_uppercase()).parse().unwrap();
        assert_eq!(plain, Sha256Digest::of(b""));
        assert_eq!(plain, prefixed);
        assert_eq!(plain, upper);
        assert_eq!(plain.to_hex(), EMPTY);
    }

    #[test]
    fn refuses_wrong_length_and_non_hex() {
        let short = "abc".parse::<Sha256Digest>().unwrap_err();
        assert!(short.to_string().contains("64 hex digits"), "{short}");
        let bad = format!("{}zz", &EMPTY[..62]);
        let err = bad.parse::<Sha256Digest>().unwrap_err();
        assert!(err.to_string().contains("non-hex character 'z'"), "{err}");
        assert_eq!(err.code(), 21);
    }

    #[test]
    fn hashing_writer_hashes_and_counts() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        assert_eq!(w.written(), 11);
        let (d, inner) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(d, Sha256Digest::of(b"hello world"));
    }

    #[test]
    fn large_inputs_hash_the_same_on_the_helper_thread() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = HashingWriter::new(std::io::sink());
        for chunk in data.chunks(100_000) {
            w.write_all(chunk).unwrap();
        }
        assert!(matches!(w.hasher, Hasher::Threaded(_)));
        assert_eq!(w.written(), data.len() as u64);
        assert_eq!(w.finish().0, Sha256Digest::of(&data));

        // A reset on the helper thread starts over too.
        let mut w = HashingWriter::new(std::io::sink());
        for chunk in data.chunks(300_000) {
            w.write_all(chunk).unwrap();
        }
        w.reset();
        w.write_all(b"fresh").unwrap();
        assert_eq!(w.finish().0, Sha256Digest::of(b"fresh"));
    }

    #[test]
    fn handed_over_buffers_are_written_and_hashed_up_to_their_length() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(100_000) {
            // Only the first `len` bytes of a buffer count.
            let mut buffer = chunk.to_vec();
            buffer.extend_from_slice(b"not part of the package");
            w.write_buffer(buffer, chunk.len()).unwrap();
        }
        assert!(matches!(w.hasher, Hasher::Threaded(_)));
        assert_eq!(w.written(), data.len() as u64);
        let (digest, inner) = w.finish();
        assert_eq!(digest, Sha256Digest::of(&data));
        assert_eq!(inner, data);
    }

    #[test]
    fn reset_starts_over() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"stale").unwrap();
        w.reset();
        w.get_mut().clear();
        w.write_all(b"fresh").unwrap();
        let (d, _) = w.finish();
        assert_eq!(d, Sha256Digest::of(b"fresh"));
    }
}
