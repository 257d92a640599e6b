//! Install stage: staging directory → DEST, atomically.
//!
//! State lives beside DEST in `<parent>/.<name>.zipdeploy/`. When DEST is a
//! mount point (a volume), which cannot be renamed, the tree is installed one
//! level down instead, at `DEST/current` with its state in
//! `DEST/.current.zipdeploy/` — the same layout, one level down, on the
//! volume's filesystem (see [`Layout::new`]):
//!
//! | path | what |
//! |---|---|
//! | `lock` | `flock`ed for the whole deploy: deploys to one DEST run one at a time |
//! | `current` | record of the installed package (digest, source, time, size, tree inode and its birth time) |
//! | `current.new` | the record being activated; the tree inode says which record is true |
//! | `staging-*`, `download-*` | work in progress; leftovers of a crash are removed by the next run |
//! | `partial.zip` + `partial.state` | a download that did not finish, kept for the next run to resume (one at most) |
//! | `trash-*` | trees being removed (a pruned release, a leftover that resisted removal) |
//! | `releases/<seq>` + `<seq>.state` | previous trees kept for rollback |
//! | `swap` | journal of the two-rename fallback where `RENAME_EXCHANGE` is missing |
//!
//! Activation exchanges the staging directory and DEST with
//! `renameat2(RENAME_EXCHANGE)`: DEST is, at every instant, either the whole old
//! tree or the whole new one. Each record carries the inode of the tree it
//! describes, so a crash between the exchange and the record update can never
//! make the next run believe the wrong package is installed.
//!
//! The state directory must belong to the effective user and be writable by
//! no one else ([`Layout::lock`] refuses it otherwise), and everything in it
//! is reached through its directory handle without following symlinks (see
//! `fsutil`).

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::fsutil::{self, TrustedDir};

/// The directory, inside a DEST that is a mount point, that holds the tree.
pub const TREE_ON_VOLUME: &str = "current";

/// Prefixes of the work a run creates in the state directory: a staging
/// tree, a download, a tree set aside by the two-rename swap, a tree being
/// removed. A crashed run's are removed by the next ([`Layout::recover`]).
const WORK_PREFIXES: [&str; 4] = ["staging-", "download-", "old-", "trash-"];

/// The records of an activation in progress, left only by a crash in it.
const JOURNALS: [&str; 2] = ["current.new", "swap"];

/// Whether `name` is a temp file being written (`.<name>.tmp-*`).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Whether `name`, in a state directory, is a leftover of a run: its work
/// ([`WORK_PREFIXES`]), a temp file, or an activation's journal. No run
/// leaves one behind, whether it succeeds or fails (a `trash-*` that
/// resists removal aside, which the report's warnings name), and the next
/// run removes a crashed one's. For the tests, which take the patterns
/// from here rather than knowing them; the kept download (`partial.*`) is
/// not a leftover.
#[doc(hidden)]
pub fn is_leftover(name: &str) -> bool {
    WORK_PREFIXES.iter().any(|p| name.starts_with(p)) || is_temp(name) || JOURNALS.contains(&name)
}

/// Where DEST and its state live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Where the tree is: DEST, or `DEST/current` when DEST is a mount point.
    dest: PathBuf,
    state: PathBuf,
    /// DEST, when it is a mount point and the tree is installed in it.
    volume: Option<PathBuf>,
}

/// What is installed at DEST, as recorded in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// SHA-256 (hex) of the full location it was fetched from, credentials
    /// included, which are never stored: the validators below apply to that
    /// location only.
    pub(crate) location: Option<String>,
    /// The `ETag` it was served with.
    pub(crate) etag: Option<String>,
    /// The `Last-Modified` it was served with.
    pub(crate) last_modified: Option<String>,
    /// The tree this record describes.
    tree: TreeId,
}

/// Which directory a record describes: its device and inode, and when that
/// inode was born, where the filesystem says. An inode number is handed out
/// again once its directory is removed (`rm -rf DEST; mkdir DEST` often
/// gets the same one back on ext4); its birth time then differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct TreeId {
    dev: u64,
    ino: u64,
    /// Seconds and nanoseconds; `None` where unknown (a filesystem without
    /// birth times, a record written before they were kept).
    born: Option<(i64, u32)>,
}

impl TreeId {
    /// The directory `name` in `at` (not through a symlink; `""` for `at`
    /// itself), if it is one.
    fn of(at: BorrowedFd<'_>, name: &Path) -> Option<TreeId> {
        use rustix::fs::{statx, AtFlags, FileType, StatxFlags};
        let flags = match name.as_os_str().is_empty() {
            true => AtFlags::EMPTY_PATH,
            false => AtFlags::SYMLINK_NOFOLLOW,
        };
        let wanted = StatxFlags::TYPE | StatxFlags::INO | StatxFlags::BTIME;
        let st = match statx(at, name, flags, wanted) {
            Ok(st) => st,
            // No statx (before Linux 4.11, or forbidden by a seccomp
            // profile): the inode alone, as records used to have it.
            Err(_) => {
                let st = rustix::fs::statat(at, name, flags).ok()?;
                return (FileType::from_raw_mode(st.st_mode) == FileType::Directory).then_some(
                    TreeId {
                        dev: st.st_dev,
                        ino: st.st_ino,
                        born: None,
                    },
                );
            }
        };
        if FileType::from_raw_mode(st.stx_mode.into()) != FileType::Directory {
            return None;
        }
        let born = StatxFlags::from_bits_retain(st.stx_mask)
            .contains(StatxFlags::BTIME)
            .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec));
        Some(TreeId {
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            born,
        })
    }

    /// Whether a record of `self` describes the directory `now`: the same
    /// inode, born at the same time when both say when.
    fn describes(&self, now: Option<TreeId>) -> bool {
        now.is_some_and(|now| {
            (self.dev, self.ino) == (now.dev, now.ino)
                && match (self.born, now.born) {
                    (Some(then), Some(now)) => then == now,
                    _ => true,
                }
        })
    }
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
            location: None,
            etag: None,
            last_modified: None,
            tree: TreeId::default(),
        }
    }

    fn to_text(&self) -> String {
        let mut text = format!(
            "digest={}\nsource={}\ninstalled_at={}\npackage_size={}\ntree={}:{}\n",
            self.digest,
            self.source.replace('\n', " "),
            self.installed_at,
            self.package_size,
            self.tree.dev,
            self.tree.ino
        );
        if let Some((secs, nanos)) = self.tree.born {
            text.push_str(&format!("tree_born={secs}.{nanos:09}\n"));
        }
        let optional = [
            ("signed_by", &self.signed_by),
            ("location_sha256", &self.location),
            ("etag", &self.etag),
            ("last_modified", &self.last_modified),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                text.push_str(&format!("{key}={}\n", value.replace('\n', " ")));
            }
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        };
        let (dev, ino) = field("tree")?.split_once(':')?;
        let born = match field("tree_born") {
            Some(when) => {
                let (secs, nanos) = when.split_once('.')?;
                Some((secs.parse().ok()?, nanos.parse().ok()?))
            }
            None => None,
        };
        Some(Installed {
            digest: field("digest")?.parse().ok()?,
            source: field("source")?.to_string(),
            installed_at: field("installed_at")?.parse().ok()?,
            package_size: field("package_size")?.parse().ok()?,
            signed_by: field("signed_by").map(str::to_string),
            location: field("location_sha256").map(str::to_string),
            etag: field("etag").map(str::to_string),
            last_modified: field("last_modified").map(str::to_string),
            tree: TreeId {
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                born,
            },
        })
    }
}

/// A previous tree kept in the state directory for rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Release {
    /// Its name in `releases/`; names sort by the time the tree was retired.
    pub id: String,
    /// What it holds, when known (a tree that was in DEST before zipdeploy
    /// first installed there has no record).
    pub installed: Option<Installed>,
}

/// Holds the deploy lock of one DEST until dropped, and the handle of its
/// checked state directory, through which the deploy reaches its files.
#[derive(Debug)]
#[doc(hidden)]
pub struct StateLock {
    _file: File,
    dir: TrustedDir,
}

impl StateLock {
    /// A handle of the state directory, for what acts on its filesystem
    /// (the staging tree is on the same one).
    pub(crate) fn filesystem(&self) -> Result<std::os::fd::OwnedFd> {
        self.dir
            .fd()
            .try_clone_to_owned()
            .map_err(Error::io("open", self.dir.path()))
    }

    /// A new download file in the state directory, created exclusively
    /// (0600) under a random name and open for reading and writing: the
    /// download is written, hashed and extracted through this handle.
    pub(crate) fn create_download(&self) -> Result<(File, PathBuf)> {
        let (name, file) = self.dir.create_new("download-", ".zip", 0o600)?;
        Ok((file, self.dir.join(name)))
    }

    /// The partial download an earlier run left for `location` (a hash of
    /// it) and `expected`, open for reading and appending, with the
    /// validator its bytes were served under; cut back to the prefix its
    /// description vouches for (a download killed while spread over several
    /// connections leaves later parts' bytes beyond it). Any other partial
    /// (another location or digest, no validator, no bytes) can no longer
    /// be used and is removed.
    pub(crate) fn take_partial(
        &self,
        location: &str,
        expected: Option<Sha256Digest>,
    ) -> Option<(File, PathBuf, String)> {
        let state = self.dir.read(PARTIAL_STATE);
        let partial = state
            .as_deref()
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(Partial::parse)
            .filter(|p| p.location == location && p.expected == expected);
        let file = partial.as_ref().and_then(|partial| {
            let file = self
                .dir
                .open_file(PARTIAL, rustix::fs::OFlags::RDWR, 0)
                .ok()?;
            let len = file.metadata().ok()?.len();
            let upto = partial.prefix.map_or(len, |prefix| prefix.min(len));
            if upto < len {
                file.set_len(upto).ok()?;
            }
            (upto > 0).then_some(file)
        });
        match (partial, file) {
            (Some(partial), Some(file)) => Some((file, self.dir.join(PARTIAL), partial.validator)),
            _ => {
                self.remove_partial();
                None
            }
        }
    }

    /// Starts a new partial download, replacing any: an empty
    /// `partial.zip`, open for reading and writing, not yet described (so
    /// not resumable until [`StateLock::describe_partial`]).
    pub(crate) fn start_partial(&self) -> Result<(File, PathBuf)> {
        self.dir.remove_file(PARTIAL_STATE)?;
        let (name, file) = self.dir.create_new("download-", ".zip", 0o600)?;
        if let Err(e) = self.dir.rename(&name, PARTIAL) {
            let _ = self.dir.remove_file(&name);
            return Err(e);
        }
        Ok((file, self.dir.join(PARTIAL)))
    }

    /// Records what `partial.zip` holds, before its first byte is written:
    /// bytes of `location` (a hash of it) for `expected`, served under
    /// `validator` (`None` makes it unusable by a later run); only its first
    /// `prefix` bytes when given (the rest may be anything).
    pub(crate) fn describe_partial(
        &self,
        location: &str,
        expected: Option<Sha256Digest>,
        validator: Option<&str>,
        prefix: Option<u64>,
    ) -> Result<()> {
        // Gone first: the description of the bytes before never outlives them.
        self.dir.remove_file(PARTIAL_STATE)?;
        let Some(validator) = validator else {
            return Ok(());
        };
        let partial = Partial {
            location: location.to_string(),
            expected,
            validator: validator.to_string(),
            prefix,
        };
        self.dir
            .write_atomic(PARTIAL_STATE, partial.to_text().as_bytes(), 0o600, false)
    }

    /// Removes the partial download (its description first: a file alone is
    /// never resumed). Best-effort: a later run removes what is left.
    pub(crate) fn remove_partial(&self) {
        let _ = self.dir.remove_file(PARTIAL_STATE);
        let _ = self.dir.remove_file(PARTIAL);
    }
}

/// The partial download kept for the next run, and its description.
const PARTIAL: &str = "partial.zip";
const PARTIAL_STATE: &str = "partial.state";

/// What the bytes of `partial.zip` are: the start of the package at a
/// location, as served under a validator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    /// SHA-256 (hex) of the full location (credentials never stored).
    location: String,
    /// The digest the deploy expected, if any: a resume is for that deploy.
    expected: Option<Sha256Digest>,
    /// The strong validator for `If-Range` (an `ETag` or a date).
    validator: String,
    /// How many of the file's first bytes are the package's, when not all
    /// of them.
    prefix: Option<u64>,
}

impl Partial {
    fn to_text(&self) -> String {
        let mut text = format!(
            "location_sha256={}\nvalidator={}\n",
            self.location,
            self.validator.replace('\n', " ")
        );
        if let Some(expected) = &self.expected {
            text.push_str(&format!("expected={expected}\n"));
        }
        if let Some(prefix) = self.prefix {
            text.push_str(&format!("prefix={prefix}\n"));
        }
        text
    }

    fn parse(text: &str) -> Option<Partial> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        };
        let expected = field("expected").map(str::parse).transpose().ok()?;
        let prefix = field("prefix").map(str::parse).transpose().ok()?;
        Some(Partial {
            location: field("location_sha256")?.to_string(),
            expected,
            validator: field("validator").filter(|v| !v.is_empty())?.to_string(),
            prefix,
        })
    }
}

/// The name of `path` in the state directory, which it must be directly in.
fn name_in<'p>(dir: &TrustedDir, path: &'p Path) -> Result<&'p str> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) if parent == dir.path() => Ok(name),
        _ => Err(Error::Config(format!(
            "{} is not a work directory of {}",
            path.display(),
            dir.path().display()
        ))),
    }
}

impl Layout {
    /// The layout for `dest` (made absolute; it must have a final name, so
    /// `/` is refused).
    ///
    /// A DEST that is a mount point (a Kubernetes `emptyDir`, a Docker
    /// volume) cannot be renamed, so it cannot be exchanged with the staged
    /// tree: the tree is then installed one level down, at `DEST/current`
    /// ([`TREE_ON_VOLUME`]), with its state in `DEST/.current.zipdeploy/` —
    /// what `Layout::new("DEST/current")` gives, so every guarantee holds as
    /// for a plain directory. [`Layout::dest`] says where the tree is, and
    /// [`Layout::volume`] whether it moved. Refused when `DEST/current` is a
    /// mount point too. This is looked at here, before any download.
    pub fn new(dest: &Path) -> Result<Layout> {
        let config = |why: &str| Error::Config(format!("destination {}: {why}", dest.display()));
        let dest = std::path::absolute(dest).map_err(|e| config(&e.to_string()))?;
        let layout = Layout::beside(dest.clone())?;
        // A path that cannot be looked at (a parent we may not search) is
        // taken for no mount point: taking the lock then fails on it, before
        // any download, naming it.
        if !crate::mounts::is_mount_point(&dest).unwrap_or(false) {
            return Ok(layout);
        }
        let tree = dest.join(TREE_ON_VOLUME);
        if crate::mounts::is_mount_point(&tree).unwrap_or(false) {
            return Err(config(&format!(
                "is a mount point, and so is {} where the tree would go; \
                 mount the volume at {} only",
                tree.display(),
                dest.display()
            )));
        }
        Ok(Layout {
            volume: Some(dest),
            ..Layout::beside(tree)?
        })
    }

    /// The layout with DEST at `dest` (absolute) and its state beside it.
    fn beside(dest: PathBuf) -> Result<Layout> {
        let config = |why: &str| Error::Config(format!("destination {}: {why}", dest.display()));
        let name = dest
            .file_name()
            .filter(|n| !matches!(n.to_str(), Some(".") | Some("..")))
            .ok_or_else(|| {
                config("needs a final directory name (the tree is swapped in beside it)")
            })?;
        let parent = dest.parent().ok_or_else(|| config("has no parent"))?;
        let mut state_name = std::ffi::OsString::from(".");
        state_name.push(name);
        state_name.push(".zipdeploy");
        Ok(Layout {
            state: parent.join(state_name),
            dest,
            volume: None,
        })
    }

    /// Where the tree is: DEST, or `DEST/current` when DEST is a mount
    /// point (see [`Layout::new`]).
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// DEST, when it is a mount point and the tree is installed one level
    /// down in it, at [`Layout::dest`].
    pub fn volume(&self) -> Option<&Path> {
        self.volume.as_deref()
    }

    /// The state directory beside it.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Creates the state directory (mode 0700, and DEST's parent, 0755,
    /// whatever the umask) and takes the lock, waiting for any other deploy
    /// to the same DEST to finish.
    ///
    /// Fails, changing nothing, when the state directory exists but is a
    /// symlink, is not owned by the effective user, or is writable by group
    /// or others: whoever could write it could make the deploy overwrite or
    /// delete files elsewhere. Fails too when something is mounted inside
    /// DEST: the mount would move away with the tree swapped out.
    #[doc(hidden)]
    pub fn lock(&self) -> Result<StateLock> {
        self.lock_waiting(&mut || Ok(()))
    }

    /// [`Layout::lock`], calling `waiting` about every 100 ms while another
    /// deploy holds the lock: its error (a cancel) is returned and abandons
    /// the wait, having changed nothing but creating the state directory.
    pub(crate) fn lock_waiting(
        &self,
        waiting: &mut dyn FnMut() -> Result<()>,
    ) -> Result<StateLock> {
        if let Some(mount) = crate::mounts::mount_below(&self.dest) {
            return Err(Error::Config(format!(
                "destination {}: {} is a mount point inside it, which would move away \
                 with the tree it is in when another tree is swapped in; keep volumes \
                 outside the destination, or mount one at the destination itself",
                self.dest.display(),
                mount.display()
            )));
        }
        if let Some(parent) = self.dest.parent() {
            fsutil::create_dir_all(parent, 0o755)?;
        }
        let dir = TrustedDir::open(&self.state, true, 0o700)?;
        let file = dir.lock("lock", waiting)?;
        Ok(StateLock { _file: file, dir })
    }

    /// Fails as [`Layout::lock`] does when the state directory exists but
    /// may not be trusted; creates nothing.
    pub(crate) fn check_state(&self) -> Result<()> {
        match fs::symlink_metadata(&self.state) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => TrustedDir::open(&self.state, false, 0o700).map(drop),
        }
    }

    /// The state directory, for reading without the lock: `None` if there
    /// is none, or it is not one zipdeploy may trust.
    fn open_state(&self) -> Option<TrustedDir> {
        TrustedDir::open(&self.state, false, 0o700).ok()
    }

    /// Completes or undoes an interrupted activation, finishes an
    /// interrupted prune, and removes the work files a crashed run left.
    /// Call with the lock held.
    ///
    /// A leftover that cannot be removed does not fail the recovery: it is
    /// set aside as `trash-*` (tried again by every later run) and described
    /// in the returned warnings.
    #[doc(hidden)]
    pub fn recover(&self, lock: &StateLock) -> Result<Vec<String>> {
        let dir = &lock.dir;
        if let Some(text) = dir.read("swap") {
            let text = String::from_utf8_lossy(&text);
            let aside = text
                .lines()
                .find_map(|l| l.strip_prefix("aside="))
                .and_then(|a| Path::new(a).file_name())
                .and_then(|a| a.to_str());
            if let Some(aside) = aside {
                if fs::symlink_metadata(&self.dest).is_err() && dir.dir_identity(aside).is_some() {
                    rustix::fs::renameat(dir.fd(), aside, rustix::fs::CWD, &self.dest)
                        .map_err(|e| Error::io("rename", dir.join(aside))(e.into()))?;
                }
            }
            dir.remove_file("swap")?;
        }
        if let Some(record) = read_record(dir, "current.new") {
            if record.tree.describes(self.dest_identity()) {
                dir.rename("current.new", "current")?;
            }
        }
        dir.remove_file("current.new")?;
        let mut warnings = Vec::new();
        for (name, _) in dir.entries()? {
            let work = WORK_PREFIXES.iter().any(|p| name.starts_with(p));
            if work || is_temp(&name) {
                if let Some(warning) = clear(dir, &name) {
                    warnings.push(warning);
                }
            }
        }
        if let Ok(releases) = dir.subdir("releases", false, 0o700) {
            // A prune removes the tree first: a record without one is stale.
            for (name, _) in releases.entries()? {
                if is_temp(&name) {
                    releases.remove_file(&name)?;
                } else if let Some(id) = name.strip_suffix(".state") {
                    if releases.dir_identity(id).is_none() {
                        releases.remove_file(&name)?;
                    }
                }
            }
        }
        Ok(warnings)
    }

    /// Replaces the record of what is installed (which must describe DEST)
    /// with `record`, keeping the tree it describes: new validators for the
    /// same package. Call with the lock held.
    pub(crate) fn rewrite_current(&self, lock: &StateLock, mut record: Installed) -> Result<()> {
        let Some(current) = self.current() else {
            return Ok(());
        };
        record.tree = current.tree;
        lock.dir
            .write_atomic("current", record.to_text().as_bytes(), 0o644, false)
    }

    /// The record of what is installed, if DEST is the tree it describes.
    pub fn current(&self) -> Option<Installed> {
        let record = read_record(&self.open_state()?, "current")?;
        record
            .tree
            .describes(self.dest_identity())
            .then_some(record)
    }

    fn dest_identity(&self) -> Option<TreeId> {
        TreeId::of(rustix::fs::CWD, &self.dest)
    }

    /// The previous trees kept for rollback, oldest first; the last one is
    /// what [`Layout::rollback`] brings back. Reads the records as they are
    /// (they are replaced atomically); takes no lock.
    pub fn releases(&self) -> Vec<Release> {
        let Some(releases) = self
            .open_state()
            .and_then(|dir| dir.subdir("releases", false, 0o700).ok())
        else {
            return Vec::new();
        };
        release_ids(&releases)
            .into_iter()
            .map(|id| {
                let tree = TreeId::of(releases.fd(), Path::new(&id));
                let installed = read_record(&releases, &format!("{id}.state"))
                    .filter(|r| r.tree.describes(tree));
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
    #[doc(hidden)]
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
        let dir = &lock.dir;
        let releases = dir.subdir("releases", false, 0o700)?;
        let id = release.id.as_str();
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
        if let Some(record) = &release.installed {
            dir.write_atomic("current.new", record.to_text().as_bytes(), 0o644, durable)?;
        }
        let swapped = if old {
            self.exchange(dir, &releases, id)
        } else {
            self.rename_into_dest(&releases, id)
        };
        if let Err(e) = swapped {
            let _ = dir.remove_file("current.new");
            return Err(e);
        }
        if release.installed.is_some() {
            if let Err(e) = dir.rename("current.new", "current") {
                // Put the tree back: a failed rollback leaves DEST as it was.
                if old {
                    let _ = self.exchange(dir, &releases, id);
                } else {
                    let _ = self.rename_from_dest(&releases, id);
                }
                return Err(e);
            }
        }
        // The record of the release now in DEST goes with it.
        let _ = releases.remove_file(&format!("{id}.state"));
        if durable {
            dir.sync();
            sync_dir(self.dest.parent().unwrap_or(Path::new("/")));
        }
        if old {
            // `releases/<id>` now holds the tree DEST had; keep it as the
            // newest release. Best-effort: the rollback has succeeded.
            let _ = self.retire(lock, &releases, id, previous.clone(), usize::MAX);
        }
        Ok((previous, release.installed))
    }

    /// A fresh path for a staging directory (not created).
    #[doc(hidden)]
    pub fn staging_path(&self) -> PathBuf {
        self.state.join(format!("staging-{}", fsutil::unique()))
    }

    /// A fresh path for a download (not created).
    #[doc(hidden)]
    pub fn download_path(&self) -> PathBuf {
        self.state
            .join(format!("download-{}.zip", fsutil::unique()))
    }

    /// Makes `staging` (a directory in the state directory) the tree at DEST
    /// in one step and records `record` as installed. The previous tree, if
    /// any, is kept in `releases/` (at most `keep` of them). With `durable`,
    /// data is synced to disk before the exchange, so a power cut cannot
    /// leave a half-written tree active.
    ///
    /// On error DEST is unchanged and `staging` is left for the caller to remove.
    #[doc(hidden)]
    pub fn activate(
        &self,
        lock: &StateLock,
        staging: &Path,
        mut record: Installed,
        keep: usize,
        durable: bool,
    ) -> Result<()> {
        use rustix::fs::{fchmod, fchown, fstat, openat, Gid, Mode, OFlags, Uid};
        let dir = &lock.dir;
        let name = name_in(dir, staging)?;
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
        let staged = openat(
            dir.fd(),
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", staging)(e.into()))?;
        // DEST keeps its mode and owner, unless another user may have put
        // it there; a new DEST is 0755.
        let kept = old.as_ref().filter(|m| self.may_pass_on(m));
        let mode = kept.map_or(0o755, |m| m.mode() & 0o7777);
        fchmod(&staged, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io("chmod", staging)(e.into()))?;
        let st = fstat(&staged).map_err(|e| Error::io("stat", staging)(e.into()))?;
        if let Some(m) = kept {
            if (st.st_uid, st.st_gid) != (m.uid(), m.gid()) {
                // Only root can give a tree away; others keep their own.
                let _ = fchown(
                    &staged,
                    Some(Uid::from_raw(m.uid())),
                    Some(Gid::from_raw(m.gid())),
                );
            }
        }
        if durable {
            rustix::fs::syncfs(&staged).map_err(|e| Error::io("sync", staging)(e.into()))?;
        }
        record.tree = TreeId::of(staged.as_fd(), Path::new(""))
            .ok_or_else(|| Error::io("stat", staging)(io::Error::other("not a directory")))?;
        drop(staged);
        dir.write_atomic("current.new", record.to_text().as_bytes(), 0o644, durable)?;

        let swapped = match old {
            None => self.rename_into_dest(dir, name),
            Some(_) => self.exchange(dir, dir, name),
        };
        if let Err(e) = swapped {
            let _ = dir.remove_file("current.new");
            return Err(e);
        }
        let previous = read_record(dir, "current");
        if let Err(e) = dir.rename("current.new", "current") {
            // Put the old tree back: a failed deploy leaves DEST as it was.
            if old.is_some() {
                let _ = self.exchange(dir, dir, name);
            } else {
                let _ = self.rename_from_dest(dir, name);
            }
            return Err(e);
        }
        if durable {
            dir.sync();
            sync_dir(self.dest.parent().unwrap_or(Path::new("/")));
        }
        if old.is_some() {
            // `staging` now holds the previous tree. Keeping it is best-effort:
            // the deploy has succeeded whatever happens here.
            let _ = self.retire(lock, dir, name, previous, keep);
        }
        Ok(())
    }

    /// Whether DEST, as `old` describes it, passes its mode and owner on to
    /// the tree that replaces it (a web server's user may own it). Not when
    /// another user owns it and others can write DEST's parent (`/tmp`):
    /// that user may have made it before the first deploy, and would then
    /// own, or be able to write, the tree deployed.
    fn may_pass_on(&self, old: &fs::Metadata) -> bool {
        let euid = rustix::process::geteuid().as_raw();
        if old.uid() == euid || old.uid() == 0 {
            return true;
        }
        let parent = self.dest.parent().and_then(|p| fs::metadata(p).ok());
        parent.is_some_and(|p| p.mode() & 0o022 == 0)
    }

    /// Renames `name` in `at` (the state directory or `releases/`) to DEST,
    /// which does not exist.
    fn rename_into_dest(&self, at: &TrustedDir, name: &str) -> Result<()> {
        rustix::fs::renameat(at.fd(), name, rustix::fs::CWD, &self.dest)
            .map_err(|e| Error::io("rename", at.join(name))(e.into()))
    }

    /// Renames DEST back to `name` in `at`.
    fn rename_from_dest(&self, at: &TrustedDir, name: &str) -> Result<()> {
        rustix::fs::renameat(rustix::fs::CWD, &self.dest, at.fd(), name)
            .map_err(|e| Error::io("rename", &self.dest)(e.into()))
    }

    /// Swaps `name` in `at` (the state directory or `releases/`) and DEST:
    /// one `renameat2(RENAME_EXCHANGE)`, or two renames under a journal in
    /// the state directory where the filesystem lacks it.
    fn exchange(&self, state: &TrustedDir, at: &TrustedDir, name: &str) -> Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(at.fd(), name, CWD, &self.dest, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(Error::io("exchange", &self.dest)(e.into())),
        }
        let aside = format!("old-{}", fsutil::unique());
        state.write_atomic("swap", format!("aside={aside}\n").as_bytes(), 0o644, true)?;
        self.rename_from_dest(state, &aside)?;
        if let Err(e) = self.rename_into_dest(at, name) {
            let _ = self.rename_into_dest(state, &aside);
            let _ = state.remove_file("swap");
            return Err(e);
        }
        state.rename_to(&aside, at, name)?;
        state.remove_file("swap")
    }

    /// Moves the previous tree (now `old_tree` in `at`) into `releases/`
    /// and prunes releases beyond `keep`, oldest first.
    fn retire(
        &self,
        lock: &StateLock,
        at: &TrustedDir,
        old_tree: &str,
        record: Option<Installed>,
        keep: usize,
    ) -> Result<()> {
        let dir = &lock.dir;
        if keep == 0 {
            if let Ok(releases) = dir.subdir("releases", false, 0o700) {
                prune(dir, &releases, 0);
            }
            let trash = format!("trash-{}", fsutil::random_hex());
            at.rename_to(old_tree, dir, &trash)?;
            clear(dir, &trash);
            return Ok(());
        }
        let releases = dir.subdir("releases", true, 0o700)?;
        let seq = fsutil::unique();
        at.rename_to(old_tree, &releases, &seq)?;
        if let Some(mut record) = record {
            if let Some(tree) = TreeId::of(releases.fd(), Path::new(&seq)) {
                record.tree = tree;
                releases.write_atomic(
                    &format!("{seq}.state"),
                    record.to_text().as_bytes(),
                    0o644,
                    false,
                )?;
            }
        }
        prune(dir, &releases, keep);
        Ok(())
    }
}

/// The ids of the kept releases (directories, never symlinks), oldest first.
fn release_ids(releases: &TrustedDir) -> Vec<String> {
    let mut ids: Vec<String> = releases
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, kind)| *kind == rustix::fs::FileType::Directory && !name.starts_with('.'))
        .map(|(name, _)| name)
        .collect();
    ids.sort();
    ids
}

/// Removes releases beyond `keep`, oldest first. Each is first renamed out
/// of `releases/` to a `trash-*` name (one atomic step: from then on it is
/// no release), then its record is removed, then its tree; a run killed
/// half-way leaves a `trash-*` that the next recovery removes, never a
/// half-deleted tree that still looks kept.
fn prune(dir: &TrustedDir, releases: &TrustedDir, keep: usize) {
    let ids = release_ids(releases);
    let excess = ids.len().saturating_sub(keep);
    for id in &ids[..excess] {
        let trash = format!("trash-{}", fsutil::random_hex());
        if releases.rename_to(id, dir, &trash).is_err() {
            continue;
        }
        let _ = releases.remove_file(&format!("{id}.state"));
        clear(dir, &trash);
    }
}

/// Removes the state directory's `name` (file or tree). If that fails it
/// is renamed to a `trash-*` name, which every later recovery tries again,
/// and the returned warning says so: no leftover blocks a deploy.
fn clear(dir: &TrustedDir, name: &str) -> Option<String> {
    let error = dir.remove_tree(name).err()?;
    let mut warning = format!("could not remove leftover: {error}");
    if !name.starts_with("trash-") {
        let trash = format!("trash-{}", fsutil::random_hex());
        if dir.rename(name, &trash).is_ok() {
            warning.push_str(&format!("; set aside as {}", dir.join(&trash).display()));
        }
    }
    Some(warning)
}

fn read_record(dir: &TrustedDir, name: &str) -> Option<Installed> {
    Installed::parse(std::str::from_utf8(&dir.read(name)?).ok()?)
}

fn sync_dir(path: &Path) {
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
}

/// Removes a file or a whole tree in the state directory (or anywhere: the
/// last component is never followed), with a bounded number of open
/// descriptors whatever its depth, making read-only directories writable
/// first so the archive's modes cannot block the removal. If it cannot be
/// removed it is renamed to a `trash-*` name beside it, so its path is free
/// again and the next recovery retries.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let Err(error) = fsutil::remove_tree_path(path) else {
        return Ok(());
    };
    if let (Some(parent), Some(_)) = (path.parent(), path.file_name()) {
        let trash = parent.join(format!("trash-{}", fsutil::random_hex()));
        if fs::rename(path, &trash).is_ok() {
            return Ok(());
        }
    }
    Err(Error::io("remove", path)(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree(root: &Path, marker: &str) {
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/marker"), marker).unwrap();
    }

    fn record(n: u8) -> Installed {
        Installed::new(Sha256Digest::of(&[n]), format!("pkg{n}"), 10)
    }

    #[test]
    fn the_names_a_run_works_under_are_leftovers_and_the_kept_ones_are_not() {
        let layout = Layout::new(Path::new("/srv/app")).unwrap();
        for work in [layout.staging_path(), layout.download_path()] {
            let name = work.file_name().unwrap().to_str().unwrap();
            assert!(is_leftover(name), "{name}");
        }
        for name in [
            "old-1",
            "trash-ab",
            ".current.tmp-ab",
            "current.new",
            "swap",
        ] {
            assert!(is_leftover(name), "{name}");
        }
        for name in [
            "lock",
            "current",
            "releases",
            "partial.zip",
            "partial.state",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
    }

    #[test]
    fn state_dir_sits_beside_dest() {
        let l = Layout::new(Path::new("/var/www/app")).unwrap();
        assert_eq!(l.state_dir(), Path::new("/var/www/.app.zipdeploy"));
        assert!(Layout::new(Path::new("/")).is_err());
        assert_eq!(l.volume(), None);
    }

    #[test]
    fn a_mount_point_gets_the_tree_one_level_down() {
        // /proc is a mount point wherever tests run; nothing is written.
        let l = Layout::new(Path::new("/proc")).unwrap();
        assert_eq!(l.dest(), Path::new("/proc/current"));
        assert_eq!(l.state_dir(), Path::new("/proc/.current.zipdeploy"));
        assert_eq!(l.volume(), Some(Path::new("/proc")));
    }

    #[test]
    fn record_round_trips() {
        let mut r = record(1);
        r.tree = TreeId {
            dev: 3,
            ino: 4,
            born: None,
        };
        assert_eq!(Installed::parse(&r.to_text()), Some(r.clone()));
        r.tree.born = Some((1_796_000_000, 5));
        assert!(r.to_text().contains("tree_born=1796000000.000000005\n"));
        assert_eq!(Installed::parse(&r.to_text()), Some(r.clone()));
        assert_eq!(Installed::parse("digest=zz"), None);
        r.location = Some("ab".repeat(32));
        r.etag = Some("\"5f1-63a\"".into());
        r.last_modified = Some("Tue, 01 Dec 2026 16:54:22 GMT".into());
        assert_eq!(Installed::parse(&r.to_text()), Some(r));
    }

    #[test]
    fn a_partial_is_resumed_only_for_its_location_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        let digest = Sha256Digest::of(b"pkg");
        let start_upto = |bytes: &[u8], validator: Option<&str>, prefix: Option<u64>| {
            let (mut file, path) = lock.start_partial().unwrap();
            lock.describe_partial("loc", Some(digest), validator, prefix)
                .unwrap();
            io::Write::write_all(&mut file, bytes).unwrap();
            path
        };
        let start = |bytes: &[u8], validator: Option<&str>| start_upto(bytes, validator, None);
        let path = start(b"PK\x03\x04", Some("\"v1\""));
        assert!(layout.recover(&lock).unwrap().is_empty());
        assert!(path.exists(), "recovery keeps the partial");
        let (file, _, validator) = lock.take_partial("loc", Some(digest)).unwrap();
        assert_eq!(
            (file.metadata().unwrap().len(), validator.as_str()),
            (4, "\"v1\"")
        );
        assert!(lock.take_partial("loc", None).is_none(), "another digest");
        assert!(!path.exists(), "a partial that cannot be used is removed");

        start(b"PK", Some("\"v1\""));
        assert!(lock.take_partial("other", Some(digest)).is_none());
        start(b"PK", None);
        assert!(
            lock.take_partial("loc", Some(digest)).is_none(),
            "no validator"
        );
        start(b"", Some("\"v1\""));
        assert!(lock.take_partial("loc", Some(digest)).is_none(), "no bytes");
        assert!(!layout.state_dir().join(PARTIAL_STATE).exists());

        // Described up to a prefix (a download killed while spread): what
        // lies beyond is cut off before it is resumed.
        let path = start_upto(b"PK\x03\x04\0\0\0\0later part", Some("\"v1\""), Some(4));
        let (file, _, _) = lock.take_partial("loc", Some(digest)).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4);
        assert_eq!(std::fs::read(&path).unwrap(), b"PK\x03\x04");
        start_upto(b"PK", Some("\"v1\""), Some(10));
        let (file, _, _) = lock.take_partial("loc", Some(digest)).unwrap();
        assert_eq!(
            file.metadata().unwrap().len(),
            2,
            "a prefix beyond the file"
        );
        start_upto(b"later part", Some("\"v1\""), Some(0));
        assert!(
            lock.take_partial("loc", Some(digest)).is_none(),
            "no prefix"
        );
        assert!(!path.exists());
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
    fn a_tree_is_told_apart_by_its_birth_time_when_both_sides_know_it() {
        let id = |born| TreeId {
            dev: 1,
            ino: 2,
            born,
        };
        assert!(id(Some((5, 6))).describes(Some(id(Some((5, 6))))));
        assert!(!id(Some((5, 6))).describes(Some(id(Some((5, 7))))));
        assert!(
            id(None).describes(Some(id(Some((5, 6))))),
            "an older record"
        );
        assert!(id(Some((5, 6))).describes(Some(id(None))));
        assert!(!id(None).describes(Some(TreeId { ino: 3, ..id(None) })));
        assert!(!id(None).describes(None));
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
        r.tree = layout.dest_identity().unwrap();
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
    fn recover_finishes_an_interrupted_prune() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("app")).unwrap();
        let lock = layout.lock().unwrap();
        for n in 1..=2u8 {
            let staging = layout.staging_path();
            tree(&staging, &format!("v{n}"));
            layout
                .activate(&lock, &staging, record(n), 1, false)
                .unwrap();
        }
        let [kept] = &layout.releases()[..] else {
            panic!("one release kept")
        };
        assert!(kept.installed.is_some());
        // Killed mid-prune: the tree renamed to trash, its record still there,
        // a record being written.
        let releases = layout.state_dir().join("releases");
        let trash = layout.state_dir().join("trash-0");
        fs::rename(releases.join(&kept.id), &trash).unwrap();
        fs::write(releases.join(".x.state.tmp-1"), b"partial").unwrap();
        assert!(layout.releases().is_empty(), "a record alone is no release");

        assert!(layout.recover(&lock).unwrap().is_empty());
        assert!(!trash.exists());
        assert!(fs::read_dir(&releases).unwrap().next().is_none());
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
