//! A destination on a small tmpfs that runs out of space: the deploy fails
//! with a named error, DEST is intact and the space is given back.
//!
//! Mounting needs root (CI runs as root). Where `mount` is refused the test
//! says so on stderr and returns without checking anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use zipdeploy::{Deploy, Limits, Sha256Digest};

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    fn new(size: &str) -> Option<SmallDisk> {
        SmallDisk::with_options(&format!("size={size}"))
    }

    /// A tmpfs mounted with `options` (`size=…,nr_inodes=…`).
    fn with_options(options: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&mount)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { _dir: dir, mount }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.mount).unwrap();
        s.f_bavail * s.f_frsize
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Stored (incompressible) data, so package size ≈ installed size.
fn noise_package(bytes: usize) -> Vec<u8> {
    let noise: Vec<u8> = (0..bytes as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    use std::io::Write;
    w.start_file("VERSION", stored).unwrap();
    w.write_all(b"big").unwrap();
    for (i, chunk) in noise.chunks(512 * 1024).enumerate() {
        w.start_file(format!("data/{i}.bin"), stored).unwrap();
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn deploy(url: &str, dest: &Path, limits: Limits) -> Result<zipdeploy::Report, zipdeploy::Error> {
    Deploy::new(url)
        .unwrap()
        .dest(dest)
        .limits(limits)
        .retries(0)
        .run()
}

#[test]
fn running_out_of_space_fails_cleanly() {
    let Some(disk) = SmallDisk::new("8m") else {
        return;
    };
    let dest = disk.mount.join("app");
    let old = app_zip("old");
    let pkg_5m = noise_package(5 << 20);
    let pkg_12m = noise_package(12 << 20);
    let server = {
        let (old, pkg_5m, pkg_12m) = (old.clone(), pkg_5m.clone(), pkg_12m.clone());
        TestServer::start(move |req, _| match req.path.as_str() {
            "/old.zip" => Reply::ok(old.clone()),
            "/5m.zip" => Reply::ok(pkg_5m.clone()),
            _ => Reply::ok(pkg_12m.clone()),
        })
    };
    deploy(&server.url("/old.zip"), &dest, Limits::default()).unwrap();
    let before = snapshot(&dest);
    let free_before = disk.free();

    let check = |err: zipdeploy::Error, code: u32, why: &str| {
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(why), "{err}");
        assert_eq!(snapshot(&dest), before, "DEST changed");
        assert_eq!(names_in(&disk.mount), [".app.zipdeploy", "app"]);
        assert_eq!(disk.free(), free_before, "space not given back");
    };

    // 5 MiB downloads, but 5 more MiB of extraction do not fit: refused
    // before writing by the free-space check.
    let err = deploy(&server.url("/5m.zip"), &dest, Limits::default()).unwrap_err();
    check(err, 71, "not enough free space");

    // Without the check, the write itself hits ENOSPC.
    let unchecked = Limits {
        check_free_space: false,
        ..Limits::default()
    };
    let err = deploy(&server.url("/5m.zip"), &dest, unchecked).unwrap_err();
    check(err, 70, "No space left on device");

    // 12 MiB cannot even be downloaded.
    let err = deploy(&server.url("/12m.zip"), &dest, Limits::default()).unwrap_err();
    check(err, 70, "No space left on device");

    // And a package that fits still deploys on the same disk.
    let small = app_zip("new");
    let pkg = disk.mount.join("..").join("small.zip");
    std::fs::write(&pkg, &small).unwrap();
    Deploy::new(pkg.to_str().unwrap())
        .unwrap()
        .sha256(&Sha256Digest::of(&small).to_hex())
        .unwrap()
        .dest(&dest)
        .run()
        .unwrap();
    assert_eq!(read(dest.join("VERSION")), b"new");
}

/// The download's blocks are reserved up front: streaming's free-space check
/// must not count the rest of the download a second time, or it steps aside
/// on a disk that holds the download, the tree and the 1 MiB streaming
/// keeps free (11 MiB), with a quarter MiB to spare; counted twice, the
/// half-MiB entry not yet downloaded does not fit.
#[test]
fn streaming_counts_the_reserved_download_once() {
    let Some(disk) = SmallDisk::new("11520k") else {
        return;
    };
    let dest = disk.mount.join("app");
    let pkg = noise_package(5 << 20);
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, _| Reply::ok(pkg.clone()))
    };
    let report = Deploy::new(&server.url("/5m.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(&pkg).to_hex())
        .unwrap()
        .dest(&dest)
        .retries(0)
        .stream(true)
        .durable(false)
        .run()
        .unwrap();
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(dest.join("VERSION")), b"big");
}

#[test]
fn too_few_inodes_for_the_entries_is_named_as_such() {
    // Space for the files, but inodes for about 100.
    let Some(disk) = SmallDisk::with_options("size=64m,nr_inodes=100") else {
        return;
    };
    let dest = disk.mount.join("app");
    let package = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        use std::io::Write;
        for i in 0..300 {
            w.start_file(format!("src/f{i}.txt"), options).unwrap();
            w.write_all(b"x").unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let server = TestServer::start(move |_, _| Reply::ok(package.clone()));
    let err = deploy(&server.url("/app.zip"), &dest, Limits::default()).unwrap_err();
    assert_eq!(err.code(), 71, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("not enough free inodes") && message.contains("301 entries to create"),
        "{message}"
    );
    assert!(matches!(
        err,
        zipdeploy::Error::NoInodes { needed: 301, .. }
    ));
    assert!(!dest.exists());
}
