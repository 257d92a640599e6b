//! What a package installs as, beyond bytes: names (`./`), special files,
//! directory modes and modification times, the same whether the archive is
//! extracted after the download or while it streams in.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::raw::{raw_zip, RawEntry};
use common::*;
use zipdeploy::{Deploy, Error, Report};

/// Deploys `pkg` from a local path and over HTTP (streamed); both trees must
/// be the same, modes and times included. Returns the local tree's root.
fn deploy_both(pkg: &[u8]) -> (tempfile::TempDir, Report) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pkg.zip");
    std::fs::write(&path, pkg).unwrap();
    let local = Deploy::new(path.to_str().unwrap())
        .unwrap()
        .dest(tmp.path().join("app"))
        .durable(false)
        .run()
        .unwrap();
    let server = TestServer::serving(pkg.to_vec());
    let streamed = Deploy::new(&server.url("/pkg.zip"))
        .unwrap()
        .dest(tmp.path().join("net"))
        .durable(false)
        .run()
        .unwrap();
    assert!(streamed.streamed, "{:?}", streamed.stream_fallback);
    let (a, b) = (tmp.path().join("app"), tmp.path().join("net"));
    assert_eq!(snapshot(&a), snapshot(&b), "streamed tree differs");
    assert_eq!(mtimes(&a), mtimes(&b), "streamed times differ");
    assert_eq!(local.files, streamed.files);
    (tmp, local)
}

/// Deploys `pkg` from a path and over HTTP; both must fail alike.
fn refused_both(pkg: &[u8]) -> Error {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pkg.zip");
    std::fs::write(&path, pkg).unwrap();
    let local = Deploy::new(path.to_str().unwrap())
        .unwrap()
        .dest(tmp.path().join("app"))
        .durable(false)
        .run()
        .unwrap_err();
    let server = TestServer::serving(pkg.to_vec());
    let streamed = Deploy::new(&server.url("/pkg.zip"))
        .unwrap()
        .dest(tmp.path().join("net"))
        .durable(false)
        .run()
        .unwrap_err();
    assert_eq!(local.to_string(), streamed.to_string());
    local
}

/// Modification times (seconds, nanoseconds) of everything below `root`,
/// links not followed.
fn mtimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    snapshot(root)
        .into_keys()
        .map(|rel| {
            let meta = std::fs::symlink_metadata(root.join(&rel)).unwrap();
            (rel, (meta.mtime(), meta.mtime_nsec()))
        })
        .collect()
}

fn mtime(root: &Path, rel: &str) -> i64 {
    std::fs::symlink_metadata(root.join(rel)).unwrap().mtime()
}

/// MS-DOS (date, time) fields.
fn dos(y: u16, mo: u16, d: u16, h: u16, mi: u16, s: u16) -> (u16, u16) {
    (
        ((y - 1980) << 9) | (mo << 5) | d,
        (h << 11) | (mi << 5) | (s / 2),
    )
}

/// An extended-timestamp (0x5455) body holding only an mtime.
fn ut(secs: i32) -> Vec<u8> {
    let mut body = vec![1];
    body.extend_from_slice(&secs.to_le_bytes());
    body
}

#[test]
fn dot_slash_names_install_like_plain_ones() {
    // What `bsdtar --format zip -cf app.zip -C dist .` writes.
    let pkg = raw_zip(&[
        RawEntry::dir("./").mode(0o040700),
        RawEntry::stored("./index.html", b"<h1>hi</h1>"),
        RawEntry::dir("./css/"),
        RawEntry::deflated("./css/site.css", b"body{}"),
        RawEntry::stored("./css/./print.css", b"@media print{}"),
    ]);
    let (tmp, report) = deploy_both(&pkg);
    let tree = snapshot(&tmp.path().join("app"));
    let names: Vec<&str> = tree.keys().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(
        names,
        ["css", "css/print.css", "css/site.css", "index.html"]
    );
    assert_eq!(report.files, 3);
    // The root entry adds nothing: not even its mode.
    let root = std::fs::metadata(tmp.path().join("app")).unwrap().mode() & 0o777;
    assert_eq!(root, 0o755);
}

#[test]
fn a_name_and_its_dot_slash_twin_are_duplicates() {
    for (first, second) in [("a.txt", "./a.txt"), ("./d/x", "d/./x")] {
        let pkg = raw_zip(&[
            RawEntry::stored(first, b"one"),
            RawEntry::stored(second, b"two"),
        ]);
        let err = refused_both(&pkg);
        assert_eq!(err.code(), 51, "{err}");
        assert!(err.to_string().contains("duplicate entry"), "{err}");
    }
    // A file named `.` is the root and not a directory.
    let err = refused_both(&raw_zip(&[RawEntry::stored(".", b"x")]));
    assert_eq!(err.code(), 52, "{err}");
}

#[test]
fn a_fifo_entry_with_data_is_a_regular_file() {
    // `echo bla | zip x.zip -` stores the pipe's mode with the data.
    let pkg = raw_zip(&[
        RawEntry::stored("-", b"bla\n").mode(0o010600),
        RawEntry::stored("dev", b"data").mode(0o020644),
    ]);
    let (tmp, _) = deploy_both(&pkg);
    let tree = snapshot(&tmp.path().join("app"));
    assert_eq!(tree[Path::new("-")], ('f', 0o600, b"bla\n".to_vec()));
    assert_eq!(tree[Path::new("dev")], ('f', 0o644, b"data".to_vec()));
    // An empty one is refused: nothing tells it from a real FIFO.
    let empty = raw_zip(&[RawEntry::stored("-", b"").mode(0o010600)]);
    let err = refused_both(&empty);
    assert_eq!(err.code(), 52);
    assert!(err.to_string().contains("FIFOs are refused"), "{err}");
}

#[test]
fn directories_get_the_search_bit_wherever_they_are_readable() {
    let pkg = raw_zip(&[
        RawEntry::dir("shared/").mode(0o040644),
        RawEntry::stored("shared/a.txt", b"a"),
        RawEntry::dir("private/").mode(0o040600),
        RawEntry::dir("group/").mode(0o040640),
        RawEntry::dir("plain/").mode(0o040750),
    ]);
    let (tmp, _) = deploy_both(&pkg);
    let tree = snapshot(&tmp.path().join("app"));
    let mode = |p: &str| tree[Path::new(p)].1;
    assert_eq!(mode("shared"), 0o755);
    assert_eq!(mode("private"), 0o700);
    assert_eq!(mode("group"), 0o750);
    assert_eq!(mode("plain"), 0o750);
}

#[test]
fn times_come_from_the_utc_fields_then_the_dos_time_as_utc() {
    let dos_noon = dos(2020, 6, 1, 12, 0, 0); // 1591012800 as UTC
    let mut ntfs = vec![0, 0, 0, 0, 1, 0, 24, 0];
    let ticks = (1_500_000_000u64 + 11_644_473_600) * 10_000_000 + 5_000_000;
    ntfs.extend_from_slice(&ticks.to_le_bytes());
    ntfs.extend_from_slice(&[0; 16]);
    let pkg = raw_zip(&[
        // Info-ZIP / bsdtar / Go: whole seconds, UTC; the DOS field is local.
        RawEntry::deflated("ut.txt", b"ut")
            .dos_time(dos_noon.0, dos_noon.1)
            .extra_field(0x5455, &ut(1_600_000_001)),
        // 7-Zip: NTFS ticks.
        RawEntry::stored("ntfs.txt", b"ntfs")
            .dos_time(dos_noon.0, dos_noon.1)
            .extra_field(0x000a, &ntfs),
        RawEntry::stored("dos.txt", b"dos").dos_time(dos_noon.0, dos_noon.1),
        // Go module zips: a zero DOS date.
        RawEntry::stored("zero.txt", b"zero").dos_time(0, 0),
        RawEntry::symlink("link", "ut.txt").extra_field(0x5455, &ut(1_400_000_000)),
        // An explicit directory keeps its time although files land in it.
        RawEntry::dir("dir/").extra_field(0x5455, &ut(1_300_000_000)),
        RawEntry::stored("dir/inner.txt", b"x").extra_field(0x5455, &ut(1_700_000_000)),
        // Directories the archive does not list: the newest time below.
        RawEntry::stored("implied/a/old.txt", b"o").extra_field(0x5455, &ut(1_100_000_000)),
        RawEntry::stored("implied/b/new.txt", b"n").extra_field(0x5455, &ut(1_200_000_000)),
    ]);
    let (tmp, _) = deploy_both(&pkg);
    let app = tmp.path().join("app");
    assert_eq!(mtime(&app, "ut.txt"), 1_600_000_001);
    let meta = std::fs::metadata(app.join("ntfs.txt")).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_500_000_000, 500_000_000)
    );
    assert_eq!(mtime(&app, "dos.txt"), 1_591_012_800);
    assert_eq!(mtime(&app, "zero.txt"), 315_532_800, "1980-01-01T00:00:00Z");
    assert_eq!(mtime(&app, "link"), 1_400_000_000);
    assert_eq!(mtime(&app, "dir"), 1_300_000_000);
    assert_eq!(mtime(&app, "dir/inner.txt"), 1_700_000_000);
    assert_eq!(mtime(&app, "implied/a"), 1_100_000_000);
    assert_eq!(mtime(&app, "implied/b"), 1_200_000_000);
    assert_eq!(mtime(&app, "implied"), 1_200_000_000);
}

#[test]
fn the_same_package_gives_the_same_times_every_time() {
    let pkg = raw_zip(&[
        RawEntry::stored("a/b/c.txt", b"c").dos_time(0, 0),
        RawEntry::dir("d/"),
        RawEntry::stored("d/e.txt", b"e"),
    ]);
    let (first, _) = deploy_both(&pkg);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (second, _) = deploy_both(&pkg);
    let times = mtimes(&first.path().join("app"));
    assert_eq!(times, mtimes(&second.path().join("app")));
    assert!(times.values().all(|(s, _)| *s < 1_800_000_000));
}
