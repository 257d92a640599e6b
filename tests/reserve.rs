//! Disk blocks reserved before they are written: the download gets its
//! announced length at once, and a large file extracted while downloading
//! its declared size, while their lengths still say how much was written
//! (a cut download is resumed from its length). A large file extracted from
//! a local package is reserved too.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::{Deploy, Sha256Digest};

/// Bytes of disk the file at `path` has, and its length.
fn blocks_and_len(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.blocks() * 512, meta.len()))
}

/// A temporary directory on a filesystem that reserves blocks beyond a
/// file's length; `None` (the test is skipped, and says so) elsewhere.
fn reserving_tempdir() -> Option<tempfile::TempDir> {
    let tmp = tempfile::tempdir().unwrap();
    if reserving_works(tmp.path()) {
        return Some(tmp);
    }
    eprintln!("SKIPPED: this filesystem does not reserve blocks (fallocate KEEP_SIZE)");
    None
}

/// Whether the filesystem of `dir` reserves blocks beyond a file's length.
fn reserving_works(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let file = std::fs::File::create(&probe).unwrap();
    let works = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, 1 << 20)
        .is_ok()
        && blocks_and_len(&probe).is_some_and(|(blocks, len)| blocks >= 1 << 20 && len == 0);
    std::fs::remove_file(&probe).unwrap();
    works
}

/// The first file named `name` under the state directory `state`'s
/// staging trees.
fn staged(state: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(state)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
        .map(|e| e.path().join(name))
        .find(|p| p.exists())
}

#[test]
fn the_download_and_a_large_streamed_file_have_their_blocks_before_their_bytes() {
    let Some(tmp) = reserving_tempdir() else {
        return;
    };
    let data = noise(3 << 20, 11);
    let package = noise_package(&data, "v1");
    // The download stops for a while two thirds into the large file.
    let arrived = 2 << 20;
    let server = {
        let package = package.clone();
        TestServer::start(move |_, _| {
            Reply::ok(package.clone()).fault(Fault::StallAfter(arrived, Duration::from_secs(2)))
        })
    };
    let dest = tmp.path().join("app");
    let state = tmp.path().join(".app.zipdeploy");
    let deploy = {
        let (url, dest) = (server.url("/app.zip"), dest.clone());
        let digest = Sha256Digest::of(&package).to_hex();
        std::thread::spawn(move || {
            Deploy::new(&url)
                .unwrap()
                .sha256(&digest)
                .unwrap()
                .dest(&dest)
                .retries(0)
                .stream(true)
                .durable(false)
                .run()
        })
    };

    let partial = state.join("partial.zip");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (download, file) = loop {
        let download = blocks_and_len(&partial);
        let file = staged(&state, "data/noise.bin").and_then(|p| blocks_and_len(&p));
        if let (Some(d), Some(f)) = (download, file) {
            if d.1 == arrived as u64 && f.1 > 0 {
                break (d, f);
            }
        }
        assert!(Instant::now() < deadline, "{download:?} {file:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The download's length is what arrived; its blocks cover all of it.
    assert!(download.0 >= package.len() as u64, "{download:?}");
    // The file is being written, and has the blocks of its declared size.
    assert!(file.1 < data.len() as u64, "{file:?}");
    assert!(file.0 >= data.len() as u64, "{file:?}");

    // The stall ends with the connection: the download is cut.
    let err = deploy.join().unwrap().unwrap_err();
    assert_eq!(err.class(), zipdeploy::ErrorClass::Network, "{err}");
    assert!(!dest.exists());
}

/// `filefrag -v`'s extent lines for `path`, or `None` where it cannot map
/// extents (no filefrag, or a filesystem without FIEMAP).
fn extent_flags(path: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(str::to_string)
        .collect();
    (out.status.success() && !lines.is_empty()).then_some(lines)
}

#[test]
fn a_large_file_from_a_local_package_is_written_into_reserved_blocks() {
    let Some(tmp) = reserving_tempdir() else {
        return;
    };
    let data = noise(3 << 20, 12);
    let package = tmp.path().join("app.zip");
    std::fs::write(&package, noise_package(&data, "v1")).unwrap();
    let dest = tmp.path().join("app");
    Deploy::new(package.to_str().unwrap())
        .unwrap()
        .dest(&dest)
        .durable(false)
        .run()
        .unwrap();
    let file = dest.join("data/noise.bin");
    assert_eq!(std::fs::read(&file).unwrap(), data);
    // Written into blocks reserved first, the file's extents have their
    // place on disk ("unwritten" until the kernel writes the data out).
    // Written without, they are still delayed allocations: the kernel
    // reserved and tracked each 4 KiB block as it came.
    let Some(extents) = extent_flags(&file) else {
        eprintln!("SKIPPED: filefrag cannot map extents here");
        return;
    };
    assert!(
        !extents.iter().any(|l| l.contains("delalloc")),
        "{extents:#?}"
    );
}
