//! Whether a directory is a mount point.
//!
//! A mount point cannot be renamed (`EBUSY`), so a DEST that is one — a
//! Kubernetes `emptyDir`, a Docker volume — cannot be exchanged with a staged
//! tree; `install::Layout` installs one level down in it instead. The answer
//! must be known before anything is downloaded.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
use rustix::io::Errno;

/// True when the directory `path` (a symlink is not followed) is the root of
/// a mount: a filesystem of its own, or a bind mount of a directory. A path
/// that does not exist, or is not a directory, is no mount point.
pub(crate) fn is_mount_point(path: &Path) -> io::Result<bool> {
    match statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE) {
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
        Ok(st) if !is_dir(st.stx_mode) => return Ok(false),
        // Linux 5.8 and later say so directly, bind mounts included.
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        _ => {}
    }
    is_mount_point_without_statx(path)
}

fn is_dir(mode: u16) -> bool {
    u32::from(mode) & 0o170_000 == 0o040_000
}

/// The answer on kernels whose `statx` cannot give it: a device other than
/// the parent's, or else (a bind mount within one filesystem shares its
/// device) a mount point listed in `/proc/self/mountinfo`.
fn is_mount_point_without_statx(path: &Path) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(false);
    }
    let parent = fs::metadata(path.join(".."))?;
    if parent.dev() != meta.dev() || parent.ino() == meta.ino() {
        return Ok(true);
    }
    let table = fs::read("/proc/self/mountinfo")?;
    let canonical = fs::canonicalize(path)?;
    Ok(listed_in_mountinfo(&table, &canonical))
}

/// The first mount point strictly below the directory `path`, e.g. a volume
/// mounted inside DEST, which would move with the tree holding it when
/// another tree is swapped in. `None` when there is none, `path` is not a
/// directory (a symlink is not followed), or the mount table cannot be read.
pub(crate) fn mount_below(path: &Path) -> Option<PathBuf> {
    if !fs::symlink_metadata(path).ok()?.is_dir() {
        return None;
    }
    let canonical = fs::canonicalize(path).ok()?;
    let table = fs::read("/proc/self/mountinfo").ok()?;
    first_below(&table, &canonical)
}

/// The first mount point of the mountinfo `table` strictly below `dir`
/// (whole components: `/var/www/app` is below `/var/www`, not `/var/ww`).
fn first_below(table: &[u8], dir: &Path) -> Option<PathBuf> {
    mount_points(table)
        .map(PathBuf::from)
        .find(|p| p != dir && p.starts_with(dir))
}

/// True when `path` is the mount point of a line of the mountinfo `table`.
fn listed_in_mountinfo(table: &[u8], path: &Path) -> bool {
    let path = path.as_os_str();
    mount_points(table).any(|p| p == path)
}

/// The mount points (the fifth field) of the lines of the mountinfo
/// `table`, whose spaces, tabs, newlines and backslashes are escaped as
/// octal (`\040`).
fn mount_points(table: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    table
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(unescape)
}

fn unescape(field: &[u8]) -> OsString {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (field[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw
36 22 0:21 /srv/data /var/www/app rw,relatime shared:1 - ext4 /dev/root rw
37 22 0:31 / /mnt/my\\040volume rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_mount_points_in_mountinfo() {
        assert!(listed_in_mountinfo(TABLE, Path::new("/var/www/app")));
        assert!(listed_in_mountinfo(TABLE, Path::new("/mnt/my volume")));
        assert!(!listed_in_mountinfo(TABLE, Path::new("/var/www")));
        assert!(!listed_in_mountinfo(TABLE, Path::new("/mnt/my\\040volume")));
        assert!(!listed_in_mountinfo(TABLE, Path::new("/srv/data")));
        let below = |dir: &str| first_below(TABLE, Path::new(dir));
        assert_eq!(below("/var/www"), Some(PathBuf::from("/var/www/app")));
        assert_eq!(below("/var/www/app"), None);
        assert_eq!(below("/var/ww"), None, "components, not bytes");
    }

    #[test]
    fn a_plain_or_missing_directory_is_no_mount_point() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).unwrap();
        assert!(!is_mount_point(&dir).unwrap());
        assert!(!is_mount_point_without_statx(&dir).unwrap());
        assert!(!is_mount_point(&tmp.path().join("missing")).unwrap());
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point_without_statx(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }

    /// A bind mount within one filesystem keeps the device: the fallback
    /// must find it in mountinfo. Mounts in a mount namespace of its own
    /// (the test runs itself again under `unshare --mount`); needs root.
    #[test]
    fn a_bind_mount_is_found_without_statx() {
        const NAME: &str = "mounts::tests::a_bind_mount_is_found_without_statx";
        if std::env::var_os("ZIPDEPLOY_TEST_MOUNT_NS").is_none() {
            let out = std::process::Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--"])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env("ZIPDEPLOY_TEST_MOUNT_NS", NAME)
                .output()
                .expect("running unshare (util-linux)");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains(&format!("test {NAME} ... ok")),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (source, at) = (tmp.path().join("source"), tmp.path().join("my app"));
        fs::create_dir(&source).unwrap();
        fs::create_dir(&at).unwrap();
        let mounted = std::process::Command::new("mount")
            .arg("--bind")
            .args([&source, &at])
            .status()
            .unwrap();
        assert!(mounted.success());
        let found = (is_mount_point(&at), is_mount_point_without_statx(&at));
        let plain = is_mount_point_without_statx(&source);
        let _ = std::process::Command::new("umount").arg(&at).status();
        assert_eq!(
            fs::metadata(&source).unwrap().dev(),
            fs::metadata(tmp.path()).unwrap().dev()
        );
        assert!(found.0.unwrap() && found.1.unwrap());
        assert!(!plain.unwrap());
    }
}
