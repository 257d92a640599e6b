//! Directory handles for the directories zipdeploy keeps its own files in
//! (the state dir beside DEST, the shared cache).
//!
//! Such a directory is used only when it is owned by the effective user and
//! not writable by group or others ([`TrustedDir::open`]); then only that
//! user can have put anything inside. Even so, everything inside is reached
//! through the directory's handle with the `*at` calls, and never through a
//! symlink: files are opened with `O_NOFOLLOW | O_NONBLOCK` and must be
//! regular files (a FIFO cannot block a deploy), directories with
//! `O_NOFOLLOW | O_DIRECTORY`, new files are created with `O_EXCL` under
//! unpredictable names, and trees are removed without following a symlink
//! and with a bounded number of open descriptors, however deep.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Sixteen hex digits from the kernel's random source: a name nobody can
/// guess ahead of time.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            // getrandom(2) exists since Linux 3.17; fall back to the device.
            Err(_) => {
                let mut dev = File::open("/dev/urandom").expect("no kernel random source");
                dev.read_exact(&mut bytes).expect("reading /dev/urandom");
                filled = bytes.len();
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How often a wait for a lock held by someone else checks it again (and
/// calls its `waiting` hook, e.g. a progress heartbeat that may cancel).
pub(crate) const LOCK_POLL: Duration = Duration::from_millis(100);

/// Why [`wait_for_lock`] gave up.
enum LockWait {
    Failed(io::Error),
    Stopped(Error),
}

/// Takes an exclusive `flock` of `file` without ever blocking in the
/// kernel: tries, and while another holds it, sleeps [`LOCK_POLL`] and asks
/// `waiting` whether to go on.
fn wait_for_lock(file: &File, waiting: &mut dyn FnMut() -> Result<()>) -> Result<(), LockWait> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(LOCK_POLL);
                waiting().map_err(LockWait::Stopped)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LockWait::Failed(e)),
        }
    }
}

/// A directory only the effective user can write, held open.
#[derive(Debug)]
pub(crate) struct TrustedDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn identity(st: &Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Creates the missing directories of `path` with exactly `mode` (whatever
/// the umask): a world-writable parent would let others swap what is below.
pub(crate) fn create_dir_all(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent, mode)?;
    }
    match rfs::mkdir(path, Mode::from_raw_mode(mode)) {
        Ok(()) => rfs::chmod(path, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io("chmod", path)(e.into())),
        Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io("create directory", path)(e.into())),
    }
}

impl TrustedDir {
    /// Opens the directory at `path` (creating it, and its parents, with
    /// `mode` when `create`) and checks that the effective user owns it and
    /// that group and others cannot write it. Otherwise fails naming the path
    /// and the fix, having changed nothing.
    pub(crate) fn open(path: &Path, create: bool, mode: u32) -> Result<TrustedDir> {
        if create {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_dir_all(parent, 0o755)?;
            }
            match rfs::mkdir(path, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    let dir = Self::open_checked(CWD, path.as_os_str(), path, true)?;
                    rfs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
                        .map_err(|e| Error::io("chmod", path)(e.into()))?;
                    return Ok(dir);
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io("create directory", path)(e.into())),
            }
        }
        Self::open_checked(CWD, path.as_os_str(), path, false)
    }

    /// A directory inside this one (created with `mode` when `create`), under
    /// the same rules.
    pub(crate) fn subdir(&self, name: &str, create: bool, mode: u32) -> Result<TrustedDir> {
        let path = self.path.join(name);
        if create {
            match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    let dir = Self::open_checked(&self.fd, OsStr::new(name), &path, true)?;
                    rfs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
                        .map_err(|e| Error::io("chmod", &path)(e.into()))?;
                    return Ok(dir);
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io("create directory", &path)(e.into())),
            }
        }
        Self::open_checked(&self.fd, OsStr::new(name), &path, false)
    }

    fn open_checked<Fd: AsFd>(
        at: Fd,
        name: &OsStr,
        path: &Path,
        just_created: bool,
    ) -> Result<TrustedDir> {
        let untrusted = |why: String| {
            Error::io("refusing to use", path)(io::Error::new(io::ErrorKind::PermissionDenied, why))
        };
        let fd = match rfs::openat(at, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(untrusted(
                    "it is a symlink or not a directory; remove it".into(),
                ))
            }
            Err(e) => return Err(Error::io("open directory", path)(e.into())),
        };
        let st = rfs::fstat(&fd).map_err(|e| Error::io("stat", path)(e.into()))?;
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(untrusted(format!(
                "it is owned by uid {}, not by uid {euid} that runs zipdeploy; \
                 chown it to uid {euid} and chmod go-w, or remove it",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 && !just_created {
            return Err(untrusted(format!(
                "it is writable by group or others (mode {:o}); chmod go-w it, or remove it",
                st.st_mode & 0o7777
            )));
        }
        Ok(TrustedDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory's path (for messages, and for stages that take paths).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside it.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the regular file `name` with `flags` (plus `mode` when it
    /// creates), never through a symlink and never blocking on a FIFO or a
    /// device: anything but a regular file is refused.
    pub(crate) fn open_file(&self, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = rfs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| match e {
            Errno::LOOP => io::Error::new(io::ErrorKind::InvalidData, "is a symlink"),
            // Opening a FIFO for writing with no reader.
            Errno::NXIO => io::Error::new(io::ErrorKind::InvalidData, "is not a regular file"),
            e => e.into(),
        })?;
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "is not a regular file",
            ));
        }
        rfs::fcntl_setfl(&fd, rfs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    /// Opens (creating it if needed) the lock file `name` and `flock`s it,
    /// waiting for whoever holds it. A lock is trusted only if its file is
    /// still the one at `name` once locked (a holder may remove it), and
    /// junk at `name` (a symlink, a FIFO, a directory), which nobody can
    /// have locked, is replaced.
    ///
    /// The wait polls every [`LOCK_POLL`] and calls `waiting` in between:
    /// its error (a cancel) abandons the wait, so a deploy queued behind
    /// another one stays cancellable.
    pub(crate) fn lock(&self, name: &str, waiting: &mut dyn FnMut() -> Result<()>) -> Result<File> {
        let path = self.join(name);
        let mut junk_removed = 0;
        loop {
            let file = match self.open_file(name, OFlags::WRONLY | OFlags::CREATE, 0o600) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::InvalidData && junk_removed < 3 => {
                    junk_removed += 1;
                    self.remove_junk(name)
                        .map_err(|e| Error::io("remove", &path)(e))?;
                    continue;
                }
                Err(e) => return Err(Error::io("open lock", &path)(e)),
            };
            wait_for_lock(&file, waiting).map_err(|e| match e {
                LockWait::Failed(e) => Error::io("lock", &path)(e),
                LockWait::Stopped(e) => e,
            })?;
            let here = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW);
            let locked = rfs::fstat(&file).map_err(|e| Error::io("stat", &path)(e.into()))?;
            if here.is_ok_and(|st| identity(&st) == identity(&locked)) {
                return Ok(file);
            }
            // Its holder removed it while we waited: lock the new one.
        }
    }

    /// Removes `name` if it is not a regular file. Done under a `flock` of
    /// the directory, so that two processes replacing the same junk cannot
    /// remove the lock file the other one created in its place.
    fn remove_junk(&self, name: &str) -> io::Result<()> {
        rfs::flock(&self.fd, rfs::FlockOperation::LockExclusive)?;
        let removed = match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
                remove_tree_at(self.fd(), OsStr::new(name))
            }
            _ => Ok(()),
        };
        let _ = rfs::flock(&self.fd, rfs::FlockOperation::Unlock);
        removed
    }

    /// Reads the small regular file `name`, if there is one.
    pub(crate) fn read(&self, name: &str) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        let file = self.open_file(name, OFlags::RDONLY, 0).ok()?;
        file.take(1 << 20).read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// Creates a new file `<prefix><random><suffix>` exclusively with
    /// exactly `mode`; returns its name and the open file.
    pub(crate) fn create_new(
        &self,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> Result<(String, File)> {
        loop {
            let name = format!("{prefix}{}{suffix}", random_hex());
            match self.open_file(&name, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, mode) {
                Ok(file) => {
                    rfs::fchmod(&file, Mode::from_raw_mode(mode))
                        .map_err(|e| Error::io("chmod", self.join(&name))(e.into()))?;
                    return Ok((name, file));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", self.join(&name))(e)),
            }
        }
    }

    /// Replaces `name` with a file holding `bytes`, atomically: written to a
    /// new file under a random name, then renamed over `name` (a symlink at
    /// `name` is replaced, not followed).
    pub(crate) fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        durable: bool,
    ) -> Result<()> {
        let (tmp, mut file) = self.create_new(&format!(".{name}.tmp-"), "", mode)?;
        let tmp_path = self.join(&tmp);
        let written = file
            .write_all(bytes)
            .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
            .map_err(Error::io("write", &tmp_path))
            .and_then(|()| self.rename(&tmp, name));
        if written.is_err() {
            let _ = self.remove_file(&tmp);
        }
        written
    }

    /// Renames `from` to `to`, both in this directory.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<()> {
        rfs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| Error::io("rename", self.join(from))(e.into()))
    }

    /// Renames `from` in this directory to `to` in `other`.
    pub(crate) fn rename_to(&self, from: &str, other: &TrustedDir, to: &str) -> Result<()> {
        rfs::renameat(&self.fd, from, &other.fd, to)
            .map_err(|e| Error::io("rename", self.join(from))(e.into()))
    }

    /// Removes the file (or symlink) `name`; a missing one is fine.
    pub(crate) fn remove_file(&self, name: &str) -> Result<()> {
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("remove", self.join(name))(e.into())),
        }
    }

    /// `lstat` of `name`: what is there, without following a symlink.
    pub(crate) fn stat(&self, name: &str) -> Option<Stat> {
        rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()
    }

    /// Device and inode of the directory `name`, if it is one (not a symlink).
    pub(crate) fn dir_identity(&self, name: &str) -> Option<(u64, u64)> {
        self.stat(name).filter(is_dir).map(|st| identity(&st))
    }

    /// The names in the directory with their types (a symlink is a symlink).
    pub(crate) fn entries(&self) -> Result<Vec<(String, FileType)>> {
        let fd = rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("read directory", &self.path)(e.into()))?;
        let mut dir =
            rfs::Dir::new(fd).map_err(|e| Error::io("read directory", &self.path)(e.into()))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| Error::io("read directory", &self.path)(e.into()))?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => self
                    .stat(name)
                    .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode)),
                kind => kind,
            };
            names.push((name.to_string(), kind));
        }
        Ok(names)
    }

    /// Removes `name` and, if it is a directory, everything below it; see
    /// [`remove_tree_at`].
    pub(crate) fn remove_tree(&self, name: &str) -> Result<()> {
        remove_tree_at(self.fd(), OsStr::new(name))
            .map_err(|e| Error::io("remove", self.join(name))(e))
    }

    /// Syncs the directory itself (its entries) to disk.
    pub(crate) fn sync(&self) {
        let _ = rfs::fsync(&self.fd);
    }
}

/// Removes `name` in `parent` and, when it is a directory, the whole tree
/// below it, never following a symlink.
///
/// At most three descriptors are open at any depth: the walk goes down by
/// opening a child from the current directory's handle and comes back up
/// through `..`, checked to be the directory it came from, so a tree of any
/// depth is removed under any `ulimit -n`. Directories whose modes would
/// stop the removal (read-only, not searchable) are made `0700` first.
pub(crate) fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !is_dir(&st) {
        return unlink(parent, name, AtFlags::empty());
    }
    // A concurrent writer could keep refilling it; give up after a while.
    for _ in 0..8 {
        match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        empty_tree(parent, name)?;
    }
    unlink(parent, name, AtFlags::REMOVEDIR)
}

fn unlink(dir: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> io::Result<()> {
    match rfs::unlinkat(dir, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens the directory `name` in `at` for removing its entries, making it
/// `0700` first if its mode would get in the way; returns it with its
/// identity.
fn open_for_removal(at: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OwnedFd, (u64, u64))> {
    let fd = match rfs::openat(at, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        // Not readable: only a directory we own can be made so.
        Err(Errno::ACCESS) => {
            let st = rfs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)?;
            if !is_dir(&st) {
                return Err(io::Error::other("changed while being removed"));
            }
            rfs::chmodat(at, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rfs::openat(at, name, DIR_FLAGS, Mode::empty())?
        }
        Err(e) => return Err(e.into()),
    };
    let st = rfs::fstat(&fd)?;
    if st.st_mode & 0o700 != 0o700 {
        rfs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok((fd, identity(&st)))
}

/// Most subdirectories remembered per level between scans: bounds memory
/// for very wide trees (the rest are found by the next scan).
const PENDING_MAX: usize = 4096;

/// Removes everything below the directory `name` in `parent`.
///
/// Each directory is scanned once: files and empty subdirectories go at
/// once, the others are remembered and emptied one after the other, and a
/// last scan confirms the directory is empty before going back up.
fn empty_tree(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let (mut here, mut here_id) = open_for_removal(parent, name)?;
    let mut pending = scan(here.as_fd())?;
    // The way back up: for each level above, the directory entered from it,
    // its identity, and its subdirectories still to empty.
    let mut trail: Vec<(OsString, (u64, u64), Vec<OsString>)> = Vec::new();
    loop {
        if let Some(child) = pending.pop() {
            let (below, below_id) = match open_for_removal(here.as_fd(), &child) {
                Ok(opened) => opened,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            trail.push((child, here_id, pending));
            (here, here_id) = (below, below_id);
            pending = scan(here.as_fd())?;
            continue;
        }
        pending = scan(here.as_fd())?;
        if !pending.is_empty() {
            continue;
        }
        let Some((child, expected, above)) = trail.pop() else {
            return Ok(());
        };
        let up = rfs::openat(&here, "..", DIR_FLAGS, Mode::empty())?;
        if identity(&rfs::fstat(&up)?) != expected {
            return Err(io::Error::other("tree moved while being removed"));
        }
        (here, here_id) = (up, expected);
        // Not empty after all (a writer): the parent's last scan finds it.
        match rfs::unlinkat(&here, &child, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        pending = above;
    }
}

/// One pass over the directory `dir`: removes its files, symlinks and empty
/// subdirectories, and returns (some of) the subdirectories that are not
/// empty.
fn scan(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut full = Vec::new();
    let mut entries = rfs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let child = OsStr::from_bytes(entry.file_name().to_bytes());
        if child == "." || child == ".." {
            continue;
        }
        let child_is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                rfs::statat(dir, child, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| is_dir(&st))
            }
            _ => false,
        };
        if !child_is_dir {
            unlink(dir, child, AtFlags::empty())?;
            continue;
        }
        match rfs::unlinkat(dir, child, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY | Errno::EXIST) => {
                if full.len() < PENDING_MAX {
                    full.push(child.to_os_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(full)
}

/// Removes the tree at `path` (see [`remove_tree_at`]), reaching it from its
/// parent directory; the last component is never followed.
pub(crate) fn remove_tree_path(path: &Path) -> io::Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")),
    };
    let dir = match rfs::open(parent, DIR_FLAGS - OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_tree_at(dir.as_fd(), name)
}

/// A name that sorts by creation time and that nobody can guess.
pub(crate) fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:024}-{}", random_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn random_names_differ() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn removes_a_deep_tree_with_few_descriptors_and_follows_no_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        let root = tmp.path().join("tree");
        fs::create_dir(&root).unwrap();
        // Built relative to each level so the path never gets long.
        let top = rfs::open(&root, DIR_FLAGS, Mode::empty()).unwrap();
        let mut fd = top;
        for level in 0..1500 {
            rfs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            let f = rfs::openat(
                &fd,
                "f",
                OFlags::CREATE | OFlags::WRONLY,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            drop(f);
            if level % 100 == 0 {
                rfs::symlinkat(outside.as_os_str(), &fd, "link").unwrap();
            }
            fd = rfs::openat(&fd, "d", DIR_FLAGS, Mode::empty()).unwrap();
        }
        drop(fd);
        fs::set_permissions(root.join("d/d"), fs::Permissions::from_mode(0o500)).unwrap();
        symlink(&outside, root.join("d/out")).unwrap();
        remove_tree_path(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
    }

    #[test]
    fn a_symlink_is_removed_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("f"), b"x").unwrap();
        symlink(&target, tmp.path().join("link")).unwrap();
        remove_tree_path(&tmp.path().join("link")).unwrap();
        assert!(target.join("f").exists());
        assert!(fs::symlink_metadata(tmp.path().join("link")).is_err());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TrustedDir::open(&tmp.path().join("d"), true, 0o700).unwrap();
        rfs::mkfifoat(dir.fd(), "fifo", Mode::from_raw_mode(0o600)).unwrap();
        let err = dir.open_file("fifo", OFlags::RDONLY, 0).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(dir.read("fifo").is_none());
        // Junk where a lock file belongs is replaced.
        dir.lock("fifo", &mut || Ok(())).unwrap();
        assert!(dir.join("fifo").is_file());
    }

    #[test]
    fn a_held_lock_is_polled_and_the_wait_can_be_abandoned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TrustedDir::open(&tmp.path().join("d"), true, 0o700).unwrap();
        let held = dir.lock("lock", &mut || Ok(())).unwrap();
        let mut polls = 0;
        let started = std::time::Instant::now();
        let err = dir
            .lock("lock", &mut || {
                polls += 1;
                if polls == 3 {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert_eq!(polls, 3);
        assert!(
            started.elapsed() < LOCK_POLL * 20,
            "{:?}",
            started.elapsed()
        );
        drop(held);
        dir.lock("lock", &mut || panic!("free: no wait")).unwrap();
    }

    #[test]
    fn refuses_a_directory_others_may_write_or_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&open, true, 0o700)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("writable by group or others") && err.contains("open"),
            "{err}"
        );
        assert_eq!(
            fs::metadata(&open).unwrap().permissions().mode() & 0o777,
            0o777
        );
        symlink(tmp.path(), tmp.path().join("link")).unwrap();
        let err = TrustedDir::open(&tmp.path().join("link"), true, 0o700).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
