//! Hostile and unusual archives, crafted here byte by byte: each is either
//! installed exactly or refused with a named error, and after a refusal the
//! previous tree is byte-for-byte intact and nothing exists beside DEST but
//! its state directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::raw::{raw_zip, RawEntry, RawZip};
use common::*;
use zipdeploy::{Deploy, Error, Limits, Report};

/// Two directories with a previous deploy at `app`: every archive is
/// deployed into one from a local file (extracted after reading it whole)
/// and into the other over HTTP (extracted while it streams in), and the two
/// must agree exactly.
struct Site {
    tmp: tempfile::TempDir,
    net: tempfile::TempDir,
    body: Arc<Mutex<Vec<u8>>>,
    server: TestServer,
    before: Before,
}

impl Site {
    fn new() -> Site {
        let body = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let body = body.clone();
            TestServer::start(move |_, _| {
                // Small pieces, so that extraction really overlaps the download.
                let body = body.lock().unwrap().clone();
                Reply::ok(body).fault(Fault::Trickle(16 * 1024, Duration::from_micros(200)))
            })
        };
        let site = Site {
            tmp: tempfile::tempdir().unwrap(),
            net: tempfile::tempdir().unwrap(),
            body,
            server,
            before: Before::default(),
        };
        site.deploy_with(&app_zip("old"), Limits::default())
            .unwrap();
        Site {
            before: Before::of(&site.dest()),
            ..site
        }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("app")
    }

    fn deploy_with(&self, archive: &[u8], limits: Limits) -> Result<Report, Error> {
        let pkg = self.tmp.path().join("pkg.zip");
        std::fs::write(&pkg, archive).unwrap();
        let local = Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(self.dest())
            .limits(limits.clone())
            .durable(false)
            .run();
        std::fs::remove_file(&pkg).unwrap();

        *self.body.lock().unwrap() = archive.to_vec();
        let streamed = Deploy::new(&self.server.url("/pkg.zip"))
            .unwrap()
            .dest(self.net.path().join("app"))
            .limits(limits)
            .durable(false)
            .run();
        match (&local, &streamed) {
            (Ok(_), Ok(report)) => assert_eq!(
                snapshot(&self.net.path().join("app")),
                snapshot(&self.dest()),
                "streamed tree differs (streamed: {}, fallback: {:?})",
                report.streamed,
                report.stream_fallback
            ),
            (Err(a), Err(b)) => {
                assert_eq!((a.code(), a.to_string()), (b.code(), b.to_string()))
            }
            (a, b) => panic!("local {a:?} but streamed {b:?}"),
        }
        local
    }

    fn deploy(&self, archive: &[u8]) -> Result<Report, Error> {
        self.deploy_with(archive, Limits::default())
    }

    /// Refused with `code` and a message containing `why`; nothing changed.
    fn assert_refused(&self, archive: &[u8], code: u32, why: &str) {
        self.assert_refused_with(archive, Limits::default(), code, why)
    }

    fn assert_refused_with(&self, archive: &[u8], limits: Limits, code: u32, why: &str) {
        let err = self.deploy_with(archive, limits).expect_err(why);
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(why), "{err:?} lacks {why:?}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        self.assert_intact();
    }

    fn assert_intact(&self) {
        for root in [self.tmp.path(), self.net.path()] {
            assert_untouched(&root.join("app"), &self.before);
        }
    }
}

fn ok_entry() -> RawEntry {
    RawEntry::stored("ok.txt", b"fine")
}

#[test]
fn traversal_absolute_and_drive_letter_names_are_refused() {
    let site = Site::new();
    let outside = site.tmp.path().join("escaped");
    for (name, why) in [
        ("../escaped", "'..' path component"),
        ("a/../../escaped", "'..' path component"),
        ("/tmp/zipdeploy-hostile-abs", "absolute path"),
        ("C:/escaped", "drive letter"),
        ("..\\..\\escaped", "backslash"),
        ("C:\\escaped", "backslash"),
        ("a//b", "empty path component"),
    ] {
        let archive = raw_zip(&[ok_entry(), RawEntry::stored(name, b"pwned")]);
        site.assert_refused(&archive, 52, why);
        assert!(!outside.exists());
    }
    assert!(!Path::new("/tmp/zipdeploy-hostile-abs").exists());
}

#[test]
fn nul_and_control_characters_in_names_are_refused() {
    let site = Site::new();
    for (name, why) in [
        (&b"a\0b"[..], "NUL byte in name"),
        (b"a\nb", "control character"),
        (b"a\x1b[31mred", "control character"),
        (b"tab\there", "control character"),
    ] {
        site.assert_refused(&raw_zip(&[RawEntry::stored(name, b"x")]), 52, why);
    }
}

#[test]
fn symlinks_leaving_the_tree_are_refused() {
    let site = Site::new();
    for (name, target, why) in [
        ("link", "/etc/passwd", "absolute target"),
        ("link", "../outside", "points outside the tree"),
        ("a/b/link", "../../../outside", "points outside the tree"),
        ("a/link", "x/../../..", "'..' after a name"),
    ] {
        let archive = raw_zip(&[ok_entry(), RawEntry::symlink(name, target)]);
        site.assert_refused(&archive, 52, why);
    }
}

#[test]
fn a_symlink_chain_that_escapes_is_refused() {
    // d/s -> .. is inside (the root), but d/l -> s/../.. would resolve
    // through s to the parent of the root.
    let site = Site::new();
    let archive = raw_zip(&[
        RawEntry::dir("d/"),
        RawEntry::symlink("d/s", ".."),
        RawEntry::symlink("d/l", "s/../.."),
    ]);
    site.assert_refused(&archive, 52, "'..' after a name");
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let site = Site::new();
    for link_target in ["sub", "/tmp", "../.."] {
        let archive = raw_zip(&[
            RawEntry::dir("sub/"),
            RawEntry::symlink("link", link_target),
            RawEntry::stored("link/planted.txt", b"pwned"),
        ]);
        site.assert_refused(&archive, 52, "");
    }
    let archive = raw_zip(&[
        RawEntry::dir("sub/"),
        RawEntry::symlink("link", "sub"),
        RawEntry::stored("link/planted.txt", b"pwned"),
    ]);
    site.assert_refused(
        &archive,
        52,
        "would be written through the symlink \"link\"",
    );
    assert!(!Path::new("/tmp/planted.txt").exists());
}

#[test]
fn in_tree_relative_symlinks_are_installed() {
    let site = Site::new();
    let archive = raw_zip(&[
        RawEntry::stored("conf/real.ini", b"x=1"),
        RawEntry::symlink("conf/current.ini", "real.ini"),
        RawEntry::symlink("top.ini", "conf/current.ini"),
        RawEntry::symlink("web/deep/up.ini", "../../conf/real.ini"),
        RawEntry::symlink("here", "."),
    ]);
    let report = site.deploy(&archive).unwrap();
    assert_eq!(report.symlinks, 4);
    let dest = site.dest();
    assert_eq!(read(dest.join("top.ini")), b"x=1");
    assert_eq!(read(dest.join("web/deep/up.ini")), b"x=1");
    assert_eq!(
        std::fs::read_link(dest.join("top.ini")).unwrap(),
        Path::new("conf/current.ini")
    );
}

#[test]
fn duplicates_and_name_clashes_are_refused() {
    let site = Site::new();
    let dup = raw_zip(&[
        RawEntry::stored("same.txt", b"one"),
        RawEntry::stored("same.txt", b"two"),
    ]);
    site.assert_refused(&dup, 51, "duplicate");
    let file_and_dir = raw_zip(&[RawEntry::stored("x", b"file"), RawEntry::dir("x/")]);
    site.assert_refused(&file_and_dir, 51, "share this name");
    let below_file = raw_zip(&[
        RawEntry::stored("x", b"file"),
        RawEntry::stored("x/y", b"under a file"),
    ]);
    site.assert_refused(&below_file, 51, "which is a file");
}

#[test]
fn local_and_central_headers_that_disagree_are_refused() {
    let site = Site::new();
    let names = RawEntry {
        central_name: Some(b"innocent.txt".to_vec()),
        ..RawEntry::stored("evil.sh", b"x")
    };
    site.assert_refused(&raw_zip(&[names]), 51, "mismatch");
    let methods = RawEntry {
        local_method: Some(8),
        ..RawEntry::stored("a.txt", b"abc")
    };
    site.assert_refused(&raw_zip(&[methods]), 51, "mismatch");
}

#[test]
fn overlapping_entries_are_refused() {
    // Fifield's bomb: many central records sharing one local entry's data.
    let site = Site::new();
    let kernel = RawEntry::deflated("k0", &vec![b'a'; 100_000]);
    let mut z = RawZip::new();
    let offset = z.add(&kernel);
    for i in 1..10 {
        let alias = RawEntry {
            name: format!("k{i}").into_bytes(),
            ..kernel.clone()
        };
        z.add_central(&alias, offset);
    }
    site.assert_refused(&z.finish(), 51, "");
}

#[test]
fn bombs_hit_the_limits_before_filling_the_disk() {
    let site = Site::new();
    // Declared sizes: three entries of almost 4 GiB each exceed 8 GiB.
    let mut z = RawZip::new();
    for i in 0..3 {
        let huge = RawEntry {
            size: u32::MAX - 1,
            ..RawEntry::deflated(format!("bomb{i}"), b"tiny")
        };
        z.add(&huge);
    }
    let archive = z.finish();
    site.assert_refused(&archive, 60, "compression ratio limit exceeded");
    let no_ratio = Limits {
        max_ratio: u64::MAX,
        ..Limits::default()
    };
    site.assert_refused_with(
        &archive,
        no_ratio,
        60,
        "total uncompressed size limit exceeded",
    );

    // A real high-ratio entry: 4 MiB of zeros deflates to ~4 KiB.
    let zeros = RawEntry::deflated("zeros.bin", &vec![0u8; 4 << 20]);
    let ratio = Limits {
        max_ratio: 100,
        ..Limits::default()
    };
    site.assert_refused_with(
        &raw_zip(std::slice::from_ref(&zeros)),
        ratio,
        60,
        "compression ratio limit",
    );
    let small = Limits {
        max_total_size: 1 << 20,
        ..Limits::default()
    };
    site.assert_refused_with(&raw_zip(&[zeros]), small, 60, "total uncompressed size");
}

#[test]
fn paths_too_deep_or_too_long_are_refused_before_anything_is_created() {
    let site = Site::new();
    let deep = format!("{}f", "d/".repeat(300));
    let archive = raw_zip(&[ok_entry(), RawEntry::stored(&deep, b"deep")]);
    site.assert_refused(
        &archive,
        60,
        "path depth limit exceeded: 301 > 256 (entry \"d/d/",
    );
    // A directory's trailing '/' is not a component: 256 deep is fine.
    let at_limit = format!("{}f", "d/".repeat(255));
    let archive = raw_zip(&[
        RawEntry::dir(&"d/".repeat(255)),
        RawEntry::stored(&at_limit, b"ok"),
    ]);
    site.deploy(&archive).unwrap();
    assert_eq!(read(site.dest().join(&at_limit)), b"ok");
    site.deploy(&app_zip("old")).unwrap();

    let long = format!("{}/f", vec!["x".repeat(250); 17].join("/"));
    let archive = raw_zip(&[RawEntry::stored(&long, b"long")]);
    site.assert_refused(&archive, 60, "path length limit exceeded: 4268 > 4096");
    let shallow = Limits {
        max_path_depth: 2,
        max_path_length: 8,
        ..Limits::default()
    };
    let archive = raw_zip(&[RawEntry::stored("a/b/c", b"")]);
    site.assert_refused_with(
        &archive,
        shallow.clone(),
        60,
        "path depth limit exceeded: 3 > 2",
    );
    let archive = raw_zip(&[RawEntry::stored("a/bcdefgh", b"")]);
    site.assert_refused_with(&archive, shallow, 60, "path length limit exceeded: 9 > 8");
}

#[test]
fn sizes_that_lie_either_way_are_refused() {
    let site = Site::new();
    let data = vec![7u8; 5000];
    let longer = RawEntry {
        size: 100,
        ..RawEntry::deflated("longer.bin", &data)
    };
    site.assert_refused(
        &raw_zip(&[longer]),
        51,
        "longer than the declared 100 bytes",
    );
    let shorter = RawEntry {
        size: 9000,
        ..RawEntry::deflated("shorter.bin", &data)
    };
    site.assert_refused(&raw_zip(&[shorter]), 51, "shorter than declared");
    // A stored entry whose compressed size runs into the next entry.
    let stored = RawEntry {
        compressed_size: 4000,
        size: 4000,
        ..RawEntry::stored("a.bin", &data[..1000])
    };
    site.assert_refused(&raw_zip(&[stored, ok_entry()]), 51, "");
}

#[test]
fn crc_mismatch_is_refused() {
    let site = Site::new();
    for entry in [
        RawEntry::stored("a.txt", b"hello"),
        RawEntry::deflated("b.txt", b"hello hello hello"),
    ] {
        let bad = RawEntry {
            crc: entry.crc ^ 1,
            ..entry
        };
        site.assert_refused(&raw_zip(&[bad]), 51, "CRC-32 mismatch");
    }
}

#[test]
fn encrypted_and_unknown_methods_are_unsupported() {
    let site = Site::new();
    let encrypted = RawEntry {
        flags: 1,
        ..RawEntry::stored("secret.txt", b"xxxxxxxxxxxxxxxx")
    };
    site.assert_refused(&raw_zip(&[encrypted]), 53, "encrypted");
    for method in [6u16, 93, 98] {
        let odd = RawEntry {
            method,
            ..RawEntry::stored("odd.bin", b"data")
        };
        site.assert_refused(&raw_zip(&[odd]), 53, "compression method");
    }
}

#[test]
fn broken_containers_are_refused() {
    let site = Site::new();
    let good = app_zip("new");
    let truncated = &good[..good.len() * 3 / 5];
    let err = site.deploy(truncated).unwrap_err();
    assert_eq!(err.class(), zipdeploy::ErrorClass::Archive, "{err}");
    site.assert_intact();

    site.assert_refused(b"hello, this is plain text\n", 50, "not a ZIP archive");
    site.assert_refused(b"", 50, "empty");
    site.assert_refused(b"<html><body>502 Bad Gateway</body></html>", 50, "HTML");
}

#[test]
fn trailing_junk_and_empty_archives_install_as_written() {
    let site = Site::new();
    let mut z = RawZip::new();
    z.add(&RawEntry::stored("VERSION", b"junk"));
    let report = site
        .deploy(&z.finish_with_trailer(b"trailing junk"))
        .unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(read(site.dest().join("VERSION")), b"junk");

    let report = site.deploy(&RawZip::new().finish()).unwrap();
    assert_eq!(report.entries, 0);
    assert!(
        names_in(&site.dest()).is_empty(),
        "an empty package is an empty tree"
    );
}

#[test]
fn fifos_devices_and_sockets_are_refused() {
    let site = Site::new();
    for (mode, why) in [
        (0o010644, "FIFOs are refused"),
        (0o020644, "device files are refused"),
        (0o060644, "device files are refused"),
        (0o140644, "sockets are refused"),
    ] {
        let archive = raw_zip(&[ok_entry(), RawEntry::stored("special", b"").mode(mode)]);
        site.assert_refused(&archive, 52, why);
    }
}

#[test]
fn setuid_and_setgid_bits_are_cleared() {
    let site = Site::new();
    let archive = raw_zip(&[
        RawEntry::stored("suid", b"#!/bin/sh\n").mode(0o106755),
        RawEntry::dir("sticky/").mode(0o041777),
    ]);
    site.deploy(&archive).unwrap();
    use std::os::unix::fs::MetadataExt;
    let mode = |p: &str| std::fs::metadata(site.dest().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sticky"), 0o777);
}

#[test]
fn unicode_names_install_exactly() {
    let site = Site::new();
    let names = [
        "日本語/ファイル.txt",
        "émoji-😀.txt",
        "Ελληνικά/αρχείο",
        "混合/mixed name.txt",
    ];
    let entries: Vec<_> = names
        .iter()
        .map(|n| RawEntry {
            flags: 1 << 11, // UTF-8 names
            ..RawEntry::stored(n, n.as_bytes())
        })
        .collect();
    site.deploy(&raw_zip(&entries)).unwrap();
    for n in names {
        assert_eq!(read(site.dest().join(n)), n.as_bytes(), "{n}");
    }
}

#[test]
fn zip64_archives_install() {
    use std::io::Write;
    let site = Site::new();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().large_file(true);
    w.start_file("big-header.txt", options).unwrap();
    w.write_all(b"zip64 extra fields").unwrap();
    let archive = w.finish().unwrap().into_inner();
    site.deploy(&archive).unwrap();
    assert_eq!(
        read(site.dest().join("big-header.txt")),
        b"zip64 extra fields"
    );
}

#[test]
fn a_100000_entry_archive_installs() {
    use std::io::Write;
    let site = Site::new();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..100_000u32 {
        w.start_file(format!("d{:03}/f{i}", i % 100), options)
            .unwrap();
        w.write_all(&i.to_le_bytes()).unwrap();
    }
    let archive = w.finish().unwrap().into_inner();
    let report = site.deploy(&archive).unwrap();
    assert_eq!(report.entries, 100_000);
    assert_eq!(report.files, 100_000);
    assert_eq!(report.bytes_written, 400_000);
    assert_eq!(
        read(site.dest().join("d042/f99942")),
        99_942u32.to_le_bytes()
    );
    let count: usize = names_in(&site.dest())
        .iter()
        .map(|d| names_in(&site.dest().join(d)).len())
        .sum();
    assert_eq!(count, 100_000);
}
