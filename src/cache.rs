//! A download cache shared by deploys on one host, keyed by SHA-256.
//!
//! ```text
//! <cache>/sha256/<hex>.zip       a verified package
//! <cache>/sha256/<hex>.minisig   its minisign signature, when one was verified
//! <cache>/sha256/<hex>.lock      flock'ed while a deploy uses or fills the entry (gone with it)
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
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{FileType, OFlags};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::fsutil::TrustedDir;

/// Default largest total size of the entries: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// Mode of the cache's directories, whatever the umask: others may read
/// the verified packages, only the owner may write.
const DIR_MODE: u32 = 0o755;
/// Mode of entries and signatures.
const FILE_MODE: u32 = 0o644;

/// A download cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    max_size: u64,
}

/// An exclusive lock on one digest's entry, held while it is filled or used.
#[derive(Debug)]
#[doc(hidden)]
pub struct EntryLock {
    file: File,
    digest: Sha256Digest,
    /// The entries directory its lock file is in.
    dir: TrustedDir,
}

impl Drop for EntryLock {
    /// A digest left without an entry (a wrong digest, a failed download)
    /// keeps no lock file: it is removed while still locked (see `lock`),
    /// so failed deploys of ever new digests leave nothing behind.
    fn drop(&mut self) {
        let hex = self.digest.to_hex();
        if self.dir.stat(&entry_name(&hex)).is_none() {
            let name = format!("{hex}.lock");
            if same_file(&self.file, &self.dir, &name) {
                let _ = self.dir.remove_file(&name);
            }
        }
    }
}

/// A temp file being downloaded into; flock'ed so that cleanup by another
/// process leaves it alone. Removed on drop unless it was renamed.
#[derive(Debug)]
pub(crate) struct TempEntry {
    path: PathBuf,
    name: String,
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

    /// Another handle on the temp file, open for reading and writing since
    /// its exclusive creation: the download is written, hashed and extracted
    /// through it, never through a second open by name.
    pub(crate) fn file(&self) -> Result<File> {
        self._lock.try_clone().map_err(Error::io("dup", &self.path))
    }
}

/// Whether `name` is a temp file: a download (`.tmp-*`) or a signature
/// being written (`.<hex>.minisig.tmp-*`).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

impl Cache {
    /// A cache in `dir` (created when first used) with the default size
    /// bound.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            max_size: DEFAULT_MAX_SIZE,
        }
    }

    /// Sets the largest total size of the entries, in bytes.
    #[must_use]
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

    /// The directory of the entries, opened (created with `create`) and
    /// checked: the cache and `sha256/` must be owned by the effective user
    /// and writable by no one else, and neither may be a symlink.
    fn entries(&self, create: bool) -> Result<TrustedDir> {
        TrustedDir::open(&self.dir, create, DIR_MODE)?.subdir("sha256", create, DIR_MODE)
    }

    /// Where the package with `digest` is kept.
    #[doc(hidden)]
    pub fn entry_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.entries_dir().join(entry_name(&digest.to_hex()))
    }

    pub(crate) fn signature_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.entries_dir()
            .join(format!("{}.minisig", digest.to_hex()))
    }

    /// Locks the entry of `digest`, waiting while another deploy holds it.
    #[doc(hidden)]
    pub fn lock(&self, digest: &Sha256Digest) -> Result<EntryLock> {
        self.lock_waiting(digest, &mut || Ok(()))
    }

    /// [`Cache::lock`], calling `waiting` about every 100 ms while another
    /// deploy holds the entry: its error (a cancel) abandons the wait.
    pub(crate) fn lock_waiting(
        &self,
        digest: &Sha256Digest,
        waiting: &mut dyn FnMut() -> Result<()>,
    ) -> Result<EntryLock> {
        let dir = self.entries(true)?;
        let file = dir.lock(&format!("{}.lock", digest.to_hex()), waiting)?;
        Ok(EntryLock {
            file,
            digest: *digest,
            dir,
        })
    }

    /// The entry of the locked digest, if there is one (not yet verified):
    /// a regular file, not a symlink.
    #[doc(hidden)]
    pub fn lookup(&self, lock: &EntryLock) -> Option<PathBuf> {
        let dir = self.entries(false).ok()?;
        let st = dir.stat(&entry_name(&lock.digest.to_hex()))?;
        (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
            .then(|| self.entry_path(&lock.digest))
    }

    /// The entry of the locked digest, opened if it is a regular file (not
    /// through a symlink, never blocking on a FIFO). A deploy hashes and
    /// extracts this one handle, so what it extracts is what it verified,
    /// whatever is renamed over the entry's path meanwhile.
    #[doc(hidden)]
    pub fn open_entry(&self, lock: &EntryLock) -> Option<File> {
        let dir = self.entries(false).ok()?;
        dir.open_file(&entry_name(&lock.digest.to_hex()), OFlags::RDONLY, 0)
            .ok()
    }

    /// Removes the (corrupt) entry of the locked digest.
    pub(crate) fn remove(&self, lock: &EntryLock) {
        if let Ok(dir) = self.entries(false) {
            let hex = lock.digest.to_hex();
            let _ = dir.remove_tree(&entry_name(&hex));
            let _ = dir.remove_tree(&format!("{hex}.minisig"));
        }
    }

    /// Marks the entry as just used (its mtime orders eviction).
    pub(crate) fn touch(&self, lock: &EntryLock) {
        let Ok(dir) = self.entries(false) else {
            return;
        };
        if let Ok(file) = dir.open_file(&entry_name(&lock.digest.to_hex()), OFlags::WRONLY, 0) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// The signature kept beside the locked entry, if there is one.
    pub(crate) fn read_signature(&self, lock: &EntryLock) -> Option<Vec<u8>> {
        self.entries(false)
            .ok()?
            .read(&format!("{}.minisig", lock.digest.to_hex()))
    }

    /// A new temp file in the cache to download into (created exclusively
    /// under a random name), and removes the temp files of downloads that
    /// crashed.
    pub(crate) fn temp(&self) -> Result<TempEntry> {
        let dir = self.entries(true)?;
        remove_stale_temps(&dir);
        let (name, lock) = dir.create_new(".tmp-", ".zip", FILE_MODE)?;
        let path = dir.join(&name);
        lock.lock().map_err(Error::io("lock", &path))?;
        Ok(TempEntry {
            path,
            name,
            _lock: lock,
        })
    }

    /// Makes the verified download `temp` the entry of the locked digest
    /// (with its signature, if one was verified), then evicts old entries.
    pub(crate) fn insert(
        &self,
        lock: &EntryLock,
        temp: TempEntry,
        signature: Option<&str>,
    ) -> Result<PathBuf> {
        let dir = self.entries(false)?;
        let hex = lock.digest.to_hex();
        dir.rename(&temp.name, &entry_name(&hex))?;
        drop(temp);
        self.keep_signature(lock, signature);
        evict(&dir, self.max_size, &hex);
        Ok(self.entry_path(&lock.digest))
    }

    /// Keeps a verified signature beside the locked entry (best-effort).
    pub(crate) fn keep_signature(&self, lock: &EntryLock, signature: Option<&str>) {
        if let (Some(text), Ok(dir)) = (signature, self.entries(false)) {
            let name = format!("{}.minisig", lock.digest.to_hex());
            let _ = dir.write_atomic(&name, text.as_bytes(), FILE_MODE, false);
        }
    }
}

fn entry_name(hex: &str) -> String {
    format!("{hex}.zip")
}

/// Removes the temp files of crashed downloads: those whose writer's lock
/// is gone, and anything at a temp name that is not a regular file.
fn remove_stale_temps(dir: &TrustedDir) {
    let Ok(entries) = dir.entries() else {
        return;
    };
    for (name, _) in entries.iter().filter(|(n, _)| is_temp(n)) {
        match dir.open_file(name, OFlags::RDONLY, 0) {
            Ok(file) => {
                if file.try_lock().is_ok() && same_file(&file, dir, name) {
                    let _ = dir.remove_file(name);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = dir.remove_tree(name);
            }
            Err(_) => {}
        }
    }
}

/// Removes least recently used entries until the total size is within
/// `max_size`, never `keep` nor any entry whose lock is held. Only regular
/// files are counted or removed.
fn evict(dir: &TrustedDir, max_size: u64, keep: &str) {
    let Ok(names) = dir.entries() else {
        return;
    };
    let mut entries: Vec<(i64, u64, String)> = names
        .into_iter()
        .filter(|(_, kind)| *kind == FileType::RegularFile)
        .filter_map(|(name, _)| {
            let hex = name.strip_suffix(".zip")?.to_string();
            if hex.starts_with('.') {
                return None;
            }
            let st = dir.stat(&name)?;
            Some((st.st_mtime, st.st_size as u64, hex))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, hex) in entries {
        if total <= max_size {
            break;
        }
        if hex == keep {
            continue;
        }
        let lock_name = format!("{hex}.lock");
        let Ok(file) = dir.open_file(&lock_name, OFlags::WRONLY | OFlags::CREATE, 0o600) else {
            continue;
        };
        if file.try_lock().is_err() || !same_file(&file, dir, &lock_name) {
            continue;
        }
        if dir.remove_file(&entry_name(&hex)).is_ok() {
            total = total.saturating_sub(len);
        }
        let _ = dir.remove_file(&format!("{hex}.minisig"));
        // Removed while locked: whoever waits on it retries (see `lock`).
        let _ = dir.remove_file(&lock_name);
    }
}

/// Whether `file` is still the file `name` in `dir`.
fn same_file(file: &File, dir: &TrustedDir, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), dir.stat(name)) {
        (Ok(a), Some(b)) => (a.dev(), a.ino()) == (b.st_dev, b.st_ino),
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
