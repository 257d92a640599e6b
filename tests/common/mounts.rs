//! Mounts for tests of a DEST that is a mount point (a volume).
//!
//! A test that mounts runs in a mount namespace of its own: the test binary
//! runs that one test again under `unshare --mount`, so whatever it mounts
//! is gone when it ends, even if it panics or is killed, and the host never
//! sees it. Mounting needs root (CI runs as root).

use std::path::Path;
use std::process::Command;

const IN_NAMESPACE: &str = "ZIPDEPLOY_TEST_MOUNT_NS";

/// Runs the test `name` (its full name in this binary) again in a new
/// private mount namespace and asserts that it ran and passed. Returns true
/// inside that run, where the caller does the work, and false outside.
pub fn in_mount_namespace(name: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, name)
        .output()
        .expect("running unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("test {name} ... ok")),
        "{name} in a mount namespace:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprint!("{stderr}");
    false
}

/// A mount made by the test, unmounted when dropped (declare it after the
/// temp dir it is in, so it goes first).
pub struct Mounted(std::path::PathBuf);

impl Mounted {
    /// A fresh tmpfs at `at` (a directory).
    pub fn tmpfs(at: &Path) -> Mounted {
        mount(&["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs"], at);
        Mounted(at.to_path_buf())
    }

    /// The directory `from` bind-mounted at `at`: same filesystem, so only
    /// the mount table tells it is a mount point.
    pub fn bind(from: &Path, at: &Path) -> Mounted {
        mount(&["--bind", from.to_str().unwrap()], at);
        Mounted(at.to_path_buf())
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount").args(args).arg(at).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
