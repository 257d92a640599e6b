//! SHA-256 digests: parsing what callers give, hashing what is written.
//!
//! The fetch stage hashes bytes as it writes them ([`HashingWriter`]), so the
//! package is read from the network exactly once; this module only parses and
//! compares the result.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
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
/// it instead of adding to it; small packages never start a thread. A
/// download's received buffers are written there too (see [`Offload`]).
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

/// Writes, on the hashing thread, the buffers handed to it (see [`Offload`]).
pub(crate) type ThreadWriter = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// A writer whose writes of whole handed-over buffers may move to the
/// hashing thread: that thread reads each buffer anyway, so it writes it
/// while the buffer is warm in its cache, where the thread handing it over
/// would write it cold.
pub(crate) trait Offload: Write {
    /// A writer for the hashing thread that continues this one's writes
    /// (same position, same observers); `None` keeps the writes here.
    fn offload(&mut self) -> Option<ThreadWriter>;
    /// `bytes` go to the thread's writer: count them as written here (the
    /// thread's writer tells observers once they are).
    fn offloaded(&mut self, bytes: &[u8]);
}

/// What the writer sends the hashing thread.
enum Chunk {
    /// Bytes to hash: the buffer's first `usize` bytes.
    Data(Vec<u8>, usize),
    /// Bytes to write with the thread's writer, then hash.
    Write(Vec<u8>, usize),
    /// The writer of the [`Chunk::Write`]s that follow.
    Writer(ThreadWriter),
    /// Forget the bytes hashed and the writer.
    Reset,
    /// Answer once every write before is done: with the first that failed.
    Settle(SyncSender<Option<io::Error>>),
}

/// A hashing thread, its queue, and buffers it hands back for reuse.
struct HashThread {
    /// `None` once hung up (finished or dropped).
    chunks: Option<SyncSender<Chunk>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Sha256>>,
    /// Whether the thread has a writer.
    writing: bool,
    /// Whether writes were handed over since the last settle.
    pending: bool,
    /// Bytes handed over to write that the thread has not written yet.
    in_flight: Arc<AtomicU64>,
    /// A write of the thread's that failed (kind and message): every write
    /// after it fails too, since the file lacks its bytes.
    failed: Option<(io::ErrorKind, String)>,
}

impl HashThread {
    /// Continues `state` on a new thread; `None` if no thread can start.
    fn start(state: Sha256) -> Option<HashThread> {
        let (chunks, queue) = sync_channel::<Chunk>(4);
        let (give_back, spare) = sync_channel::<Vec<u8>>(4);
        let in_flight = Arc::new(AtomicU64::new(0));
        let landed = in_flight.clone();
        let thread = std::thread::Builder::new()
            .name("zipdeploy-sha256".into())
            .spawn(move || {
                let mut state = state;
                let mut writer: Option<ThreadWriter> = None;
                let mut failed: Option<io::Error> = None;
                for chunk in queue {
                    match chunk {
                        Chunk::Data(buf, len) => {
                            state.update(&buf[..len]);
                            let _ = give_back.try_send(buf);
                        }
                        Chunk::Write(buf, len) => {
                            if failed.is_none() {
                                let written = match writer.as_mut() {
                                    Some(write) => write(&buf[..len]),
                                    None => Err(io::Error::other("no writer for the bytes")),
                                };
                                failed = written.err();
                            }
                            landed.fetch_sub(len as u64, Ordering::Release);
                            state.update(&buf[..len]);
                            let _ = give_back.try_send(buf);
                        }
                        Chunk::Writer(w) => writer = Some(w),
                        Chunk::Reset => {
                            state = Sha256::new();
                            writer = None;
                        }
                        Chunk::Settle(answer) => {
                            let _ = answer.send(failed.take());
                        }
                    }
                }
                state
            })
            .ok()?;
        Some(HashThread {
            chunks: Some(chunks),
            spare,
            thread: Some(thread),
            writing: false,
            pending: false,
            in_flight,
            failed: None,
        })
    }

    fn send(&self, chunk: Chunk) {
        // The thread only stops when this side hangs up.
        if let Some(chunks) = &self.chunks {
            let _ = chunks.send(chunk);
        }
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
        self.send(Chunk::Data(buf, len));
    }

    /// Waits until the thread has written every buffer handed over; the
    /// first write that failed, if one did (then and ever after).
    fn settle(&mut self) -> io::Result<()> {
        if self.pending {
            self.pending = false;
            let (answer, answered) = sync_channel(1);
            self.send(Chunk::Settle(answer));
            let failed = answered
                .recv()
                .unwrap_or_else(|_| Some(io::Error::other("the hashing thread ended")));
            if let Some(e) = failed {
                self.failed = Some((e.kind(), e.to_string()));
            }
        }
        match &self.failed {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> Sha256 {
        self.chunks = None;
        let thread = self.thread.take().expect("joined only once");
        thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

/// However the writer ends, the thread is done writing when it is gone.
impl Drop for HashThread {
    fn drop(&mut self) {
        self.chunks = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    /// Bytes of those already in the wrapped writer: the rest are on their
    /// way there on the hashing thread (see [`Offload`]).
    pub(crate) fn stored(&self) -> u64 {
        match &self.hasher {
            Hasher::Inline(_) => self.written,
            Hasher::Threaded(thread) => self.written - thread.in_flight.load(Ordering::Acquire),
        }
    }

    /// Waits until every byte counted is in the wrapped writer (the hashing
    /// thread may be writing some, see [`Offload`]); the error of a write
    /// that failed there. Call it before [`HashingWriter::finish`].
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        match &mut self.hasher {
            Hasher::Inline(_) => Ok(()),
            Hasher::Threaded(thread) => thread.settle(),
        }
    }

    /// Settles, and takes the writes back from the hashing thread: the
    /// wrapped writer is about to be used here, and the thread's writer
    /// (which continues from where it was given) would then be behind.
    fn write_here(&mut self) -> io::Result<()> {
        self.settle()?;
        if let Hasher::Threaded(thread) = &mut self.hasher {
            thread.writing = false;
        }
        Ok(())
    }

    /// Forgets everything hashed so far (used when a download restarts),
    /// once the bytes written before are in the wrapped writer.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.write_here()?;
        match &mut self.hasher {
            Hasher::Inline(state) => *state = Sha256::new(),
            Hasher::Threaded(thread) => thread.send(Chunk::Reset),
        }
        self.written = 0;
        Ok(())
    }

    /// Hashes and counts `bytes` that the wrapped writer already holds (a
    /// download resumed from the file an earlier run left), without writing
    /// them again.
    pub(crate) fn absorb(&mut self, bytes: &[u8]) {
        let _ = self.write_here();
        self.hash(bytes);
        self.written += bytes.len() as u64;
    }

    /// Mutable access to the wrapped writer, once the bytes counted are in
    /// it (a write that failed is reported by the next write or settle);
    /// the next handed-over buffers continue from where it then is.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        let _ = self.write_here();
        &mut self.inner
    }

    /// The digest of everything written, and the writer.
    pub fn finish(self) -> (Sha256Digest, W) {
        let state = match self.hasher {
            Hasher::Inline(state) => state,
            Hasher::Threaded(thread) => thread.finish(),
        };
        (Sha256Digest(state.finalize().into()), self.inner)
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

// Offloading stays the fetch stage's own.
#[allow(private_bounds)]
impl<W: Offload> HashingWriter<W> {
    /// Writes `buffer[..len]` and hashes it. On the helper thread, the
    /// buffer itself is handed over rather than copied (a copy of every
    /// byte of a large download saved) and written there, warm (see
    /// [`Offload`]; [`HashingWriter::settle`] waits for it); returns a
    /// buffer to read the next bytes into, when one is free.
    pub(crate) fn write_buffer(
        &mut self,
        buffer: Vec<u8>,
        len: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        self.hasher();
        if let Hasher::Threaded(thread) = &mut self.hasher {
            if let Some((kind, message)) = &thread.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            if !thread.writing {
                if let Some(writer) = self.inner.offload() {
                    thread.send(Chunk::Writer(writer));
                    thread.writing = true;
                }
            }
            if thread.writing {
                self.inner.offloaded(&buffer[..len]);
                thread.in_flight.fetch_add(len as u64, Ordering::Relaxed);
                thread.send(Chunk::Write(buffer, len));
                thread.pending = true;
                self.written += len as u64;
                return Ok(thread.spare.try_recv().ok());
            }
            self.settle()?;
        }
        self.inner.write_all(&buffer[..len])?;
        let spare = match &mut self.hasher {
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
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_here()?;
        let n = self.inner.write(buf)?;
        self.hash(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.settle()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
        w.reset().unwrap();
        w.write_all(b"fresh").unwrap();
        assert_eq!(w.finish().0, Sha256Digest::of(b"fresh"));
    }

    /// A file shared by the two threads: records each write and the
    /// thread that made it; fails every write once `full` bytes are in.
    #[derive(Clone, Default)]
    struct SharedFile {
        bytes: Arc<Mutex<Vec<u8>>>,
        by_hashing_thread: Arc<AtomicU64>,
        full: Option<usize>,
    }

    impl Write for SharedFile {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.bytes.lock().unwrap();
            if self.full.is_some_and(|full| bytes.len() + buf.len() > full) {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            bytes.extend_from_slice(buf);
            if std::thread::current().name() == Some("zipdeploy-sha256") {
                self.by_hashing_thread
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Offload for SharedFile {
        fn offload(&mut self) -> Option<ThreadWriter> {
            let mut file = self.clone();
            Some(Box::new(move |bytes: &[u8]| file.write_all(bytes)))
        }

        fn offloaded(&mut self, _bytes: &[u8]) {}
    }

    #[test]
    fn handed_over_buffers_are_written_and_hashed_up_to_their_length() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
        let file = SharedFile::default();
        let mut w = HashingWriter::new(file.clone());
        for (i, chunk) in data.chunks(100_000).enumerate() {
            if i % 7 == 3 {
                // A write here (a spread download's split) waits for the
                // thread's and comes after them.
                w.write_all(chunk).unwrap();
                continue;
            }
            // Only the first `len` bytes of a buffer count.
            let mut buffer = chunk.to_vec();
            buffer.extend_from_slice(b"not part of the package");
            w.write_buffer(buffer, chunk.len()).unwrap();
        }
        assert!(matches!(w.hasher, Hasher::Threaded(_)));
        assert_eq!(w.written(), data.len() as u64);
        w.settle().unwrap();
        assert_eq!(w.stored(), data.len() as u64);
        // Settled: every byte is in the file, in order.
        assert_eq!(*file.bytes.lock().unwrap(), data);
        // Past the first MiB, the hashing thread wrote the handed buffers.
        assert!(file.by_hashing_thread.load(Ordering::Relaxed) >= 1_500_000);
        let (digest, _) = w.finish();
        assert_eq!(digest, Sha256Digest::of(&data));
    }

    #[test]
    fn a_write_that_fails_on_the_hashing_thread_is_reported_and_stops_the_writes() {
        let file = SharedFile {
            full: Some(2_000_000),
            ..SharedFile::default()
        };
        let mut w = HashingWriter::new(file.clone());
        let chunk = vec![7u8; 100_000];
        let mut failed = None;
        for _ in 0..40 {
            if let Err(e) = w.write_buffer(chunk.clone(), chunk.len()) {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            Some(e) => e,
            None => w.settle().unwrap_err(),
        };
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        // Reported again, by every later write and settle.
        assert!(w.settle().is_err());
        assert!(w.write_buffer(chunk.clone(), chunk.len()).is_err());
        assert!(w.reset().is_err());
        assert_eq!(file.bytes.lock().unwrap().len(), 2_000_000);
    }

    #[test]
    fn reset_starts_over() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"stale").unwrap();
        w.reset().unwrap();
        w.get_mut().clear();
        w.write_all(b"fresh").unwrap();
        let (d, _) = w.finish();
        assert_eq!(d, Sha256Digest::of(b"fresh"));
    }
}
