//! Install stage: staging directory → DEST, atomically.
//!
//! State lives beside DEST in `<parent>/.<name>.zipdeploy/`:
//!
//! | path | what |
//! |---|---|
//! | `lock` | `flock`ed for the whole deploy: deploys to one DEST run one at a time |
//! | `current` | record of the installed package (digest, source, time, size, tree inode) |
//! | `current.new` | the record being activated; the tree inode says which record is true |
//! | `staging-*`, `download-*` | work in progress; leftovers of a crash are removed by the next run |
//! | `releases/<seq>` + `<seq>.state` | previous trees kept for rollback |
//! | `swap` | journal of the two-rename fallback where `RENAME_EXCHANGE` is missing |
//!
//! Activation exchanges the staging directory and DEST with
//! `renameat2(RENAME_EXCHANGE)`: DEST is, at every instant, either the whole old
//! tree or the whole new one. Each record carries the inode of the tree it
//! describes, so a crash between the exchange and the record update can never
//! make the next run believe the wrong package is installed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Where DEST and its state live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dest: PathBuf,
    state: PathBuf,
}

/// What is installed at DEST, as recorded in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// SHA-256 of the package.
    pub digest: Sha256Digest,
    /// Where it came from, credentials redacted.
    pub source: String,
    /// When it was activated, in seconds since the Unix epoch.
    pub installed_at: u64,
    /// Size of the package in bytes.
    pub package_size: u64,
    /// The id of the minisign key whose signature was verified, if one was.
    pub signed_by: Option<String>,
    /// Device and inode of the tree this record describes.
    tree: (u64, u64),
}

impl Installed {
    /// A record for a package about to be activated.
    pub fn new(digest: Sha256Digest, source: String, package_size: u64) -> Self {
        let installed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Installed {
            digest,
            source,
            installed_at,
            package_size,
            signed_by: None,
            tree: (0, 0),
        }
    }

    fn to_text(&self) -> String {
        let mut text = format!(
            "digest={}\nsource={}\ninstalled_at={}\npackage_size={}\ntree={}:{}\n",
            self.digest,
            self.source.replace('\n', " "),
            self.installed_at,
            self.package_size,
            self.tree.0,
            self.tree.1
        );
        if let Some(key) = &self.signed_by {
            text.push_str(&format!("signed_by={}\n", key.replace('\n', " ")));
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        };
        let (dev, ino) = field("tree")?.split_once(':')?;
        Some(Installed {
            digest: field("digest")?.parse().ok()?,
            source: field("source")?.to_string(),
            installed_at: field("installed_at")?.parse().ok()?,
            package_size: field("package_size")?.parse().ok()?,
            signed_by: field("signed_by").map(str::to_string),
            tree: (dev.parse().ok()?, ino.parse().ok()?),
        })
    }
}

/// A previous tree kept in the state directory for rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Its name in `releases/`; names sort by the time the tree was retired.
    pub id: String,
    /// What it holds, when known (a tree that was in DEST before zipdeploy
    /// first installed there has no record).
    pub installed: Option<Installed>,
}

/// Holds the deploy lock of one DEST until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Layout {
    /// The layout for `dest` (made absolute; it must have a final name).
    pub fn new(dest: &Path) -> Result<Layout> {
        let config = |why: &str| Error::Config(format!("destination {}: {why}", dest.display()));
        let dest = std::path::absolute(dest).map_err(|e| config(&e.to_string()))?;
        let name = dest
            .file_name()
            .filter(|n| !matches!(n.to_str(), Some(".") | Some("..")))
            .ok_or_else(|| config("needs a final directory name"))?;
        let parent = dest.parent().ok_or_else(|| config("has no parent"))?;
        let mut state_name = std::ffi::OsString::from(".");
        state_name.push(name);
        state_name.push(".zipdeploy");
        Ok(Layout {
            state: parent.join(state_name),
            dest,
        })
    }

    /// The destination directory.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The state directory beside it.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Creates the state directory (and DEST's parent) and takes the lock,
    /// waiting for any other deploy to the same DEST to finish.
    pub fn lock(&self) -> Result<StateLock> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(self.dest.parent().unwrap_or(Path::new("/")))
            .map_err(Error::io(
                "create directory",
                self.dest.parent().unwrap_or(&self.dest),
            ))?;
        match fs::DirBuilder::new().mode(0o700).create(&self.state) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &self.state)(e)),
        }
        let file = lock_file(&self.state.join("lock"))?;
        Ok(StateLock { _file: file })
    }

    /// Completes or undoes an interrupted activation and removes the work
    /// files a crashed run left. Call with the lock held.
    pub fn recover(&self, _lock: &StateLock) -> Result<()> {
        let journal = self.state.join("swap");
        if let Ok(text) = fs::read_to_string(&journal) {
            if let Some(aside) = text.lines().find_map(|l| l.strip_prefix("aside=")) {
                let aside = PathBuf::from(aside);
                if !self.dest.exists() && aside.exists() {
                    fs::rename(&aside, &self.dest).map_err(Error::io("rename", &aside))?;
                }
            }
            remove_file_if_exists(&journal)?;
        }
        let new_record = self.state.join("current.new");
        if let Some(record) = read_record(&new_record) {
            if Some(record.tree) == self.dest_identity() {
                fs::rename(&new_record, self.state.join("current"))
                    .map_err(Error::io("rename", &new_record))?;
            }
        }
        remove_file_if_exists(&new_record)?;
        let entries =
            fs::read_dir(&self.state).map_err(Error::io("read directory", &self.state))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("staging-")
                || name.starts_with("download-")
                || name.starts_with("old-")
            {
                remove_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// The record of what is installed, if DEST is the tree it describes.
    pub fn current(&self) -> Option<Installed> {
        let record = read_record(&self.state.join("current"))?;
        (Some(record.tree) == self.dest_identity()).then_some(record)
    }

    fn dest_identity(&self) -> Option<(u64, u64)> {
        fs::symlink_metadata(&self.dest).ok().map(|m| identity(&m))
    }

    /// The previous trees kept for rollback, oldest first; the last one is
    /// what [`Layout::rollback`] brings back. Reads the records as they are
    /// (they are replaced atomically); takes no lock.
    pub fn releases(&self) -> Vec<Release> {
        let dir = self.state.join("releases");
        let mut kept: Vec<(String, PathBuf)> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect(),
            Err(_) => return Vec::new(),
        };
        kept.sort();
        kept.into_iter()
            .map(|(id, path)| {
                let identity = fs::symlink_metadata(&path).ok().map(|m| identity(&m));
                let installed =
                    read_record(&path.with_extension("state")).filter(|r| Some(r.tree) == identity);
                Release { id, installed }
            })
            .collect()
    }

    /// Swaps the most recently kept release back into DEST, in one step
    /// (`RENAME_EXCHANGE`, as an activation), and keeps the tree it replaces
    /// as the newest release, so a second rollback returns to where the
    /// first started. Call with the lock held; nothing is pruned.
    ///
    /// Returns the records of what DEST held before and holds now (`None`
    /// for a tree zipdeploy has no record of). Fails with
    /// [`Error::NoRelease`] when no release is kept; on any error DEST is
    /// unchanged.
    pub fn rollback(
        &self,
        lock: &StateLock,
        durable: bool,
    ) -> Result<(Option<Installed>, Option<Installed>)> {
        let Some(release) = self.releases().pop() else {
            return Err(Error::NoRelease {
                dest: self.dest.clone(),
            });
        };
        let path = self.state.join("releases").join(&release.id);
        let previous = self.current();
        let old = match fs::symlink_metadata(&self.dest) {
            Ok(meta) if meta.is_dir() => true,
            Ok(_) => {
                return Err(Error::io("replace", &self.dest)(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("stat", &self.dest)(e)),
        };
        let new_record = self.state.join("current.new");
        if let Some(record) = &release.installed {
            write_file(&new_record, record.to_text().as_bytes(), durable)?;
        }
        let swapped = if old {
            self.exchange(&path)
        } else {
            fs::rename(&path, &self.dest).map_err(Error::io("rename", &path))
        };
        if let Err(e) = swapped {
            let _ = fs::remove_file(&new_record);
            return Err(e);
        }
        if release.installed.is_some() {
            if let Err(e) = fs::rename(&new_record, self.state.join("current")) {
                // Put the tree back: a failed rollback leaves DEST as it was.
                if old {
                    let _ = self.exchange(&path);
                } else {
                    let _ = fs::rename(&self.dest, &path);
                }
                return Err(Error::io("rename", &new_record)(e));
            }
        }
        // The record of the release now in DEST goes with it.
        let _ = fs::remove_file(path.with_extension("state"));
        if durable {
            sync_dir(&self.state);
            sync_dir(self.dest.parent().unwrap_or(Path::new("/")));
        }
        if old {
            // `path` now holds the tree DEST had; keep it as the newest
            // release. Best-effort: the rollback has succeeded.
            let _ = self.retire(lock, &path, previous.clone(), usize::MAX);
        }
        Ok((previous, release.installed))
    }

    /// A fresh path for a staging directory (not created).
    pub fn staging_path(&self) -> PathBuf {
        self.state.join(format!("staging-{}", unique()))
    }

    /// A fresh path for a download (not created).
    pub fn download_path(&self) -> PathBuf {
        self.state.join(format!("download-{}.zip", unique()))
    }

    /// Makes `staging` the tree at DEST in one step and records `record` as
    /// installed. The previous tree, if any, is kept in `releases/` (at most
    /// `keep` of them). With `durable`, data is synced to disk before the
    /// exchange, so a power cut cannot leave a half-written tree active.
    ///
    /// On error DEST is unchanged and `staging` is left for the caller to remove.
    pub fn activate(
        &self,
        lock: &StateLock,
        staging: &Path,
        mut record: Installed,
        keep: usize,
        durable: bool,
    ) -> Result<()> {
        let old = match fs::symlink_metadata(&self.dest) {
            Ok(meta) if meta.is_dir() => Some(meta),
            Ok(_) => {
                return Err(Error::io("replace", &self.dest)(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", &self.dest)(e)),
        };
        // DEST keeps its mode and owner; a new DEST is 0755.
        let mode = old.as_ref().map_or(0o755, |m| m.mode() & 0o7777);
        fs::set_permissions(staging, fs::Permissions::from_mode(mode))
            .map_err(Error::io("chmod", staging))?;
        if let Some(m) = &old {
            let staged = fs::metadata(staging).map_err(Error::io("stat", staging))?;
            if (staged.uid(), staged.gid()) != (m.uid(), m.gid()) {
                // Only root can give a tree away; others keep their own.
                let _ = std::os::unix::fs::chown(staging, Some(m.uid()), Some(m.gid()));
            }
        }
        if durable {
            let dir = File::open(staging).map_err(Error::io("open", staging))?;
            rustix::fs::syncfs(&dir).map_err(|e| Error::io("sync", staging)(e.into()))?;
        }
        let staged = fs::symlink_metadata(staging).map_err(Error::io("stat", staging))?;
        record.tree = identity(&staged);
        let new_record = self.state.join("current.new");
        write_file(&new_record, record.to_text().as_bytes(), durable)?;

        let swapped = match old {
            None => fs::rename(staging, &self.dest).map_err(Error::io("rename", staging)),
            Some(_) => self.exchange(staging),
        };
        if let Err(e) = swapped {
            let _ = fs::remove_file(&new_record);
            return Err(e);
        }
        let previous = read_record(&self.state.join("current"));
        let current = self.state.join("current");
        if let Err(e) = fs::rename(&new_record, &current) {
            // Put the old tree back: a failed deploy leaves DEST as it was.
            if old.is_some() {
                let _ = self.exchange(staging);
            } else {
                let _ = fs::rename(&self.dest, staging);
            }
            return Err(Error::io("rename", &new_record)(e));
        }
        if durable {
            sync_dir(&self.state);
            sync_dir(self.dest.parent().unwrap_or(Path::new("/")));
        }
        if old.is_some() {
            // `staging` now holds the previous tree. Keeping it is best-effort:
            // the deploy has succeeded whatever happens here.
            let _ = self.retire(lock, staging, previous, keep);
        }
        Ok(())
    }

    /// Swaps `staging` and DEST: one `renameat2(RENAME_EXCHANGE)`, or two
    /// renames under a journal where the filesystem lacks it.
    fn exchange(&self, staging: &Path) -> Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, staging, CWD, &self.dest, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(Error::io("exchange", &self.dest)(e.into())),
        }
        let aside = self.state.join(format!("old-{}", unique()));
        let journal = self.state.join("swap");
        write_file(
            &journal,
            format!("aside={}\n", aside.display()).as_bytes(),
            true,
        )?;
        fs::rename(&self.dest, &aside).map_err(Error::io("rename", &self.dest))?;
        if let Err(e) = fs::rename(staging, &self.dest) {
            let _ = fs::rename(&aside, &self.dest);
            let _ = fs::remove_file(&journal);
            return Err(Error::io("rename", staging)(e));
        }
        fs::rename(&aside, staging).map_err(Error::io("rename", &aside))?;
        remove_file_if_exists(&journal)
    }

    /// Moves the previous tree (now at `old_tree`) into `releases/` and prunes
    /// releases beyond `keep`, oldest first.
    fn retire(
        &self,
        _lock: &StateLock,
        old_tree: &Path,
        record: Option<Installed>,
        keep: usize,
    ) -> Result<()> {
        let releases = self.state.join("releases");
        if keep == 0 {
            remove_tree(old_tree)?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&releases)
                .map_err(Error::io("create directory", &releases))?;
            let seq = unique();
            let kept = releases.join(&seq);
            fs::rename(old_tree, &kept).map_err(Error::io("rename", old_tree))?;
            if let Some(mut record) = record {
                let meta = fs::symlink_metadata(&kept).map_err(Error::io("stat", &kept))?;
                record.tree = identity(&meta);
                write_file(
                    &releases.join(format!("{seq}.state")),
                    record.to_text().as_bytes(),
                    false,
                )?;
            }
        }
        let mut kept: Vec<PathBuf> = match fs::read_dir(&releases) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_none())
                .collect(),
            Err(_) => return Ok(()),
        };
        kept.sort();
        let excess = kept.len().saturating_sub(keep);
        for old in &kept[..excess] {
            remove_tree(old)?;
            remove_file_if_exists(&old.with_extension("state"))?;
        }
        Ok(())
    }
}

/// A name that sorts by creation time and is unique across processes.
pub(crate) fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:024}-{}", std::process::id())
}

/// Opens (creating it if needed) and `flock`s a lock file, waiting for
/// whoever holds it.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open lock", path))?;
    file.lock().map_err(Error::io("lock", path))?;
    Ok(file)
}

fn read_record(path: &Path) -> Option<Installed> {
    Installed::parse(&fs::read_to_string(path).ok()?)
}

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let mut file = File::create(path).map_err(Error::io("create", path))?;
    file.write_all(bytes).map_err(Error::io("write", path))?;
    if durable {
        file.sync_all().map_err(Error::io("sync", path))?;
    }
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a file or a whole tree, first making read-only directories
/// writable so the archive's modes cannot block the removal.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path)(e)),
    };
    if !meta.is_dir() {
        return remove_file_if_exists(path);
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_writable(path);
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, marker: &str) {
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/marker"), marker).unwrap();
    }

    fn record(n: u8) -> Installed {
        Installed::new(Sha256Digest::of(&[n]), format!("pkg{n}"), 10)
    }

    #[test]
    fn state_dir_sits_beside_dest() {
        let l = Layout::new(Path::new("/var/www/app")).unwrap();
        assert_eq!(l.state_dir(), Path::new("/var/www/.app.zipdeploy"));
        assert!(Layout::new(Path::new("/")).is_err());
    }

    #[test]
    fn record_round_trips() {
        let mut r = record(1);
        r.tree = (3, 4);
        assert_eq!(Installed::parse(&r.to_text()), Some(r));
        assert_eq!(Installed::parse("digest=zz"), None);
    }

    #[test]
    fn activation_exchanges_keeps_previous_and_records_current() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        layout.recover(&lock).unwrap();
        assert_eq!(layout.current(), None);

        for n in 1..=3u8 {
            let staging = layout.staging_path();
            tree(&staging, &format!("v{n}"));
            layout
                .activate(&lock, &staging, record(n), 1, true)
                .unwrap();
            assert!(!staging.exists());
            let marker = fs::read_to_string(layout.dest().join("sub/marker")).unwrap();
            assert_eq!(marker, format!("v{n}"));
            assert_eq!(layout.current().unwrap().digest, Sha256Digest::of(&[n]));
        }
        let releases: Vec<_> = fs::read_dir(layout.state_dir().join("releases"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(
            releases.len(),
            2,
            "one kept tree and its record: {releases:?}"
        );
        let kept = releases.iter().find(|p| p.extension().is_none()).unwrap();
        assert_eq!(fs::read_to_string(kept.join("sub/marker")).unwrap(), "v2");
        let mode = fs::metadata(layout.dest()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn a_record_for_another_tree_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        let staging = layout.staging_path();
        tree(&staging, "v1");
        layout
            .activate(&lock, &staging, record(1), 1, false)
            .unwrap();
        // Someone replaces DEST behind our back: the record no longer applies.
        fs::rename(layout.dest(), dir.path().join("moved")).unwrap();
        tree(layout.dest(), "manual");
        assert_eq!(layout.current(), None);
    }

    #[test]
    fn recover_removes_leftovers_and_finishes_a_crashed_activation() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        let staging = layout.staging_path();
        tree(&staging, "v1");
        layout
            .activate(&lock, &staging, record(1), 1, false)
            .unwrap();

        // Simulate a crash right after the exchange: current.new describes DEST.
        let mut r = record(2);
        r.tree = identity(&fs::metadata(layout.dest()).unwrap());
        fs::write(layout.state_dir().join("current.new"), r.to_text()).unwrap();
        let leftover = layout.staging_path();
        tree(&leftover, "junk");
        fs::set_permissions(leftover.join("sub"), fs::Permissions::from_mode(0o500)).unwrap();
        fs::write(layout.download_path(), b"partial").unwrap();

        layout.recover(&lock).unwrap();
        assert_eq!(layout.current().unwrap().digest, Sha256Digest::of(&[2]));
        assert!(!leftover.exists());
        let names: Vec<_> = fs::read_dir(layout.state_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("download-") || n.starts_with("staging-"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn recover_undoes_a_half_done_two_rename_swap() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        // Crash after DEST was moved aside and before staging took its place.
        let aside = layout.state_dir().join("old-1");
        tree(&aside, "v1");
        fs::write(
            layout.state_dir().join("swap"),
            format!("aside={}\n", aside.display()),
        )
        .unwrap();
        layout.recover(&lock).unwrap();
        assert_eq!(
            fs::read_to_string(layout.dest().join("sub/marker")).unwrap(),
            "v1"
        );
    }
}
