//! A download cache shared by deploys on one host, keyed by SHA-256.
//!
//! ```text
//! <cache>/sha256/<hex>.zip       a verified package
//! <cache>/sha256/<hex>.minisig   its minisign signature, when one was verified
//! <cache>/sha256/<hex>.lock      flock'ed while a deploy uses or fills the entry
//! <cache>/sha256/.tmp-*          downloads in progress (flock'ed by their writer)
//! ```
//!
//! - **Once per digest.** A deploy that knows the digest it wants locks that
//!   digest's lock file (exclusively, waiting for whoever holds it) before
//!   looking, so concurrent processes on one cache (containers sharing a
//!   volume) download a digest once: the others wait, then find it.
//! - **Verified on every use.** A hit is hashed again (and its signature
//!   checked when a key is given) before it is used; a corrupt entry is
//!   removed and fetched again. New entries are downloaded into a temp file
//!   in the cache and renamed into place only after their digest (and
//!   signature) verified.
//! - **Bounded.** After an insert, entries are evicted least recently used
//!   first (by mtime, which each use touches) until the total is within the
//!   maximum size (default 10 GiB). An entry whose lock is held (in use by
//!   some deploy, this one included) is never evicted.
//!
//! Lock files are removed only by their lock holder, and a lock is trusted
//! only if its file is still the one at its path after locking, so removing
//! them cannot let two processes hold "the same" lock.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Default largest total size of the entries: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// A download cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    max_size: u64,
}

/// An exclusive lock on one digest's entry, held while it is filled or used.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
    digest: Sha256Digest,
}

/// A temp file being downloaded into; flock'ed so that cleanup by another
/// process leaves it alone. Removed on drop unless it was renamed.
#[derive(Debug)]
pub(crate) struct TempEntry {
    path: PathBuf,
    _lock: File,
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl TempEntry {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Cache {
    /// A cache in `dir` (created when first used) with the default size
    /// bound.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            max_size: DEFAULT_MAX_SIZE,
        }
    }

    /// Sets the largest total size of the entries, in bytes.
    pub fn max_size(mut self, bytes: u64) -> Cache {
        self.max_size = bytes;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries_dir(&self) -> PathBuf {
        self.dir.join("sha256")
    }

    /// Where the package with `digest` is kept.
    pub fn entry_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.entries_dir().join(format!("{}.zip", digest.to_hex()))
    }

    pub(crate) fn signature_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.entries_dir()
            .join(format!("{}.minisig", digest.to_hex()))
    }

    fn lock_path(&self, hex: &str) -> PathBuf {
        self.entries_dir().join(format!("{hex}.lock"))
    }

    fn create(&self) -> Result<()> {
        let dir = self.entries_dir();
        fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))
    }

    /// Locks the entry of `digest`, waiting while another deploy holds it.
    pub fn lock(&self, digest: &Sha256Digest) -> Result<EntryLock> {
        self.create()?;
        let path = self.lock_path(&digest.to_hex());
        loop {
            let file = crate::install::lock_file(&path)?;
            if same_file(&file, &path) {
                return Ok(EntryLock {
                    _file: file,
                    digest: *digest,
                });
            }
            // Its holder removed it while we waited: lock the new one.
        }
    }

    /// The entry of the locked digest, if there is one (not yet verified).
    pub fn lookup(&self, lock: &EntryLock) -> Option<PathBuf> {
        let path = self.entry_path(&lock.digest);
        fs::metadata(&path)
            .is_ok_and(|m| m.is_file())
            .then_some(path)
    }

    /// The entry of the locked digest, opened if it is a regular file (not
    /// through a symlink, never blocking on a FIFO). A deploy hashes and
    /// extracts this one handle, so what it extracts is what it verified,
    /// whatever is renamed over the entry's path meanwhile.
    pub fn open_entry(&self, lock: &EntryLock) -> Option<File> {
        use rustix::fs::{Mode, OFlags};
        let path = self.entry_path(&lock.digest);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::open(&path, flags, Mode::empty()).ok()?);
        file.metadata().is_ok_and(|m| m.is_file()).then_some(file)
    }

    /// Removes the (corrupt) entry of the locked digest.
    pub(crate) fn remove(&self, lock: &EntryLock) {
        let _ = fs::remove_file(self.entry_path(&lock.digest));
        let _ = fs::remove_file(self.signature_path(&lock.digest));
    }

    /// Marks the entry as just used (its mtime orders eviction).
    pub(crate) fn touch(&self, lock: &EntryLock) {
        let path = self.entry_path(&lock.digest);
        if let Ok(file) = File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// A new temp file in the cache to download into, and removes the temp
    /// files of downloads that crashed.
    pub(crate) fn temp(&self) -> Result<TempEntry> {
        self.create()?;
        self.remove_stale_temps();
        let path = self
            .entries_dir()
            .join(format!(".tmp-{}.zip", crate::install::unique()));
        let lock = File::options()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        lock.lock().map_err(Error::io("lock", &path))?;
        Ok(TempEntry { path, _lock: lock })
    }

    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(self.entries_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let path = entry.path();
            if let Ok(file) = File::open(&path) {
                if file.try_lock().is_ok() && same_file(&file, &path) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }

    /// Makes the verified download `temp` the entry of the locked digest
    /// (with its signature, if one was verified), then evicts old entries.
    pub(crate) fn insert(
        &self,
        lock: &EntryLock,
        temp: TempEntry,
        signature: Option<&str>,
    ) -> Result<PathBuf> {
        let entry = self.entry_path(&lock.digest);
        fs::rename(&temp.path, &entry).map_err(Error::io("rename", &temp.path))?;
        drop(temp);
        self.keep_signature(lock, signature);
        self.evict(&lock.digest);
        Ok(entry)
    }

    /// Keeps a verified signature beside the locked entry (best-effort).
    pub(crate) fn keep_signature(&self, lock: &EntryLock, signature: Option<&str>) {
        if let Some(text) = signature {
            let path = self.signature_path(&lock.digest);
            let tmp = path.with_extension(format!("minisig.tmp-{}", std::process::id()));
            if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, &path).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }

    /// Removes least recently used entries until the total size is within
    /// the bound, never `keep` nor any entry whose lock is held.
    fn evict(&self, keep: &Sha256Digest) {
        let Ok(dir) = fs::read_dir(self.entries_dir()) else {
            return;
        };
        let keep = keep.to_hex();
        let mut entries: Vec<(SystemTime, u64, String)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_suffix(".zip")?.to_string();
                if hex.starts_with('.') {
                    return None;
                }
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), hex))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, hex) in entries {
            if total <= self.max_size {
                break;
            }
            if hex == keep {
                continue;
            }
            let lock_path = self.lock_path(&hex);
            let Ok(file) = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
            else {
                continue;
            };
            if file.try_lock().is_err() || !same_file(&file, &lock_path) {
                continue;
            }
            let zip = self.entries_dir().join(format!("{hex}.zip"));
            if fs::remove_file(&zip).is_ok() {
                total = total.saturating_sub(len);
            }
            let _ = fs::remove_file(self.entries_dir().join(format!("{hex}.minisig")));
            // Removed while locked: whoever waits on it retries (see `lock`).
            let _ = fs::remove_file(&lock_path);
        }
    }
}

/// Whether `file` is still the file at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether an error is the cache entry's fault (it is then fetched again).
pub(crate) fn is_corrupt_entry(error: &Error) -> bool {
    matches!(
        error,
        Error::DigestMismatch { .. } | Error::LimitExceeded { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fill(cache: &Cache, body: &[u8], age: u64) -> Sha256Digest {
        let digest = Sha256Digest::of(body);
        let lock = cache.lock(&digest).unwrap();
        let temp = cache.temp().unwrap();
        fs::write(temp.path(), body).unwrap();
        let entry = cache.insert(&lock, temp, None).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        File::options()
            .write(true)
            .open(&entry)
            .unwrap()
            .set_modified(when)
            .unwrap();
        digest
    }

    #[test]
    fn evicts_least_recently_used_but_never_a_locked_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path()).max_size(25);
        let a = fill(&cache, &[b'a'; 10], 300);
        let b = fill(&cache, &[b'b'; 10], 200);
        let held = cache.lock(&b).unwrap();
        // Inserting c (30 bytes total) evicts the oldest unlocked: a.
        let c = fill(&cache, &[b'c'; 10], 100);
        assert!(!cache.entry_path(&a).exists());
        assert!(cache.entry_path(&b).exists());
        assert!(cache.entry_path(&c).exists());
        drop(held);
        // d: b is now the least recently used and free.
        let d = fill(&cache, &[b'd'; 10], 0);
        assert!(!cache.entry_path(&b).exists());
        assert!(cache.entry_path(&c).exists() && cache.entry_path(&d).exists());
        // A single entry above the bound stays: it is the one in use.
        let small = Cache::new(dir.path()).max_size(5);
        let e = fill(&small, &[b'e'; 10], 0);
        assert!(small.entry_path(&e).exists());
        // Lock files of evicted entries went with them; temps are gone.
        let names: Vec<String> = fs::read_dir(cache.entries_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{names:?}");
        assert!(
            !names.contains(&format!("{}.lock", a.to_hex())),
            "{names:?}"
        );
    }

    #[test]
    fn stale_temps_are_removed_but_not_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let live = cache.temp().unwrap();
        fs::create_dir_all(cache.entries_dir()).unwrap();
        let stale = cache.entries_dir().join(".tmp-crashed.zip");
        fs::write(&stale, b"partial").unwrap();
        let other = cache.temp().unwrap();
        assert!(!stale.exists());
        assert!(live.path().exists() && other.path().exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }
}
