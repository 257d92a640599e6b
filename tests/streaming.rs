//! Extraction while the package downloads: used where the layout allows,
//! skipped (and said so) where it does not, and never trusted without the
//! digest and the central directory.

mod common;

use std::time::Duration;

use common::raw::{raw_zip, RawEntry, RawZip};
use common::*;
use zipdeploy::{Deploy, Sha256Digest};

fn deploy_over_http(pkg: &[u8], stream: bool) -> (tempfile::TempDir, zipdeploy::Report) {
    let tmp = tempfile::tempdir().unwrap();
    let server = {
        let pkg = pkg.to_vec();
        TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::Trickle(8 * 1024, Duration::from_millis(1)))
        })
    };
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(pkg).to_hex())
        .unwrap()
        .dest(tmp.path().join("app"))
        .stream(stream)
        .durable(false)
        .run()
        .unwrap();
    (tmp, report)
}

#[test]
fn ordinary_packages_extract_while_downloading() {
    let pkg = app_zip("streamed");
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(report.stream_fallback, None);
    assert_eq!(report.files, 4);
    let (plain, off) = deploy_over_http(&pkg, false);
    assert!(!off.streamed);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn modes_and_symlinks_come_from_the_central_directory() {
    let pkg = zip_of(&[
        Entry::FileMode("bin/run", b"#!/bin/sh\n", 0o750),
        Entry::FileMode("ro.txt", b"read only", 0o444),
        Entry::DirMode("private/", 0o700),
        Entry::File("private/key", b"k"),
        Entry::Symlink("latest", "bin/run"),
    ]);
    let (streamed, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    let (plain, _) = deploy_over_http(&pkg, false);
    let tree = snapshot(&streamed.path().join("app"));
    assert_eq!(tree, snapshot(&plain.path().join("app")));
    assert_eq!(tree[std::path::Path::new("bin/run")].1, 0o750);
    assert_eq!(tree[std::path::Path::new("latest")].0, 'l');
}

#[test]
fn entries_with_data_descriptors_stream() {
    // jar, Go, bsdtar and Python to a pipe write sizes after the data; the
    // walker inflates such entries itself to find where they end.
    let big: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut z = RawZip::new();
    z.add(&RawEntry::deflated("VERSION", b"described").with_descriptor());
    z.add(&RawEntry::stored("b.txt", b"plain"));
    z.add(&RawEntry::deflated("dir/big.bin", &big).with_descriptor());
    z.add(&RawEntry::dir("empty/").with_descriptor());
    z.add(&RawEntry::deflated("empty.txt", b"").with_descriptor());
    let pkg = z.finish();
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(tmp.path().join("app/VERSION")), b"described");
    assert_eq!(read(tmp.path().join("app/b.txt")), b"plain");
    assert_eq!(read(tmp.path().join("app/dir/big.bin")), big);
    assert_eq!(read(tmp.path().join("app/empty.txt")), b"");
    let (plain, _) = deploy_over_http(&pkg, false);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn stored_entries_with_data_descriptors_stream() {
    // jszip's streamFiles, Python's zipfile on a pipe, Go's default Store:
    // the data ends at the first descriptor that describes it.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let inner_zip = {
        // A jar in a jar: descriptor signatures of its own.
        let mut inner = RawZip::new();
        inner.add(&RawEntry::deflated("a.txt", b"inner").with_descriptor());
        inner.add(&RawEntry::stored("b.txt", b"stored").with_descriptor());
        inner.finish()
    };
    let mut fake = b"before".to_vec();
    fake.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
    fake.extend_from_slice(&[0xff; 12]);
    fake.extend_from_slice(b"after");
    let mut z = RawZip::new();
    z.add(&RawEntry::stored("big.bin", &big).with_descriptor());
    z.add(&RawEntry::stored("empty.txt", b"").with_descriptor());
    z.add(&RawEntry::stored("lib/inner.zip", &inner_zip).with_descriptor());
    z.add(&RawEntry::stored("fake.txt", &fake).with_descriptor());
    z.add(&RawEntry::deflated("VERSION", b"mixed").with_descriptor());
    let pkg = z.finish();
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(tmp.path().join("app/big.bin")), big);
    assert_eq!(read(tmp.path().join("app/empty.txt")), b"");
    assert_eq!(read(tmp.path().join("app/lib/inner.zip")), inner_zip);
    assert_eq!(read(tmp.path().join("app/fake.txt")), fake);
    assert_eq!(read(tmp.path().join("app/VERSION")), b"mixed");
}

/// A zip of stored entries whose data descriptors have no signature (CRC
/// and two 4-byte sizes after the data, as older Go wrote them).
fn unsigned_descriptor_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let u16s = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in files {
        let offset = out.len() as u32;
        let (crc, size, name_len) = (
            common::raw::crc32(data),
            data.len() as u32,
            name.len() as u16,
        );
        // Version, flags (bit 3), method (stored), time, date (1980-01-01).
        let head = u16s(&[20, 8, 0, 0, 0x21]);
        out.extend(u32s(&[0x0403_4b50]));
        out.extend(&head);
        out.extend(u32s(&[0, 0, 0]));
        out.extend(u16s(&[name_len, 0]));
        out.extend(name.as_bytes());
        out.extend(*data);
        out.extend(u32s(&[crc, size, size]));
        central.extend(u32s(&[0x0201_4b50]));
        central.extend(u16s(&[20]));
        central.extend(&head);
        central.extend(u32s(&[crc, size, size]));
        central.extend(u16s(&[name_len, 0, 0, 0, 0]));
        central.extend(u32s(&[0, offset]));
        central.extend(name.as_bytes());
    }
    let (count, at, len) = (files.len() as u16, out.len() as u32, central.len() as u32);
    out.extend(central);
    out.extend(u32s(&[0x0605_4b50]));
    out.extend(u16s(&[0, 0, count, count]));
    out.extend(u32s(&[len, at]));
    out.extend(u16s(&[0]));
    out
}

#[test]
fn stored_entries_whose_descriptors_lack_the_signature_stream() {
    // Older Go's `Store`: the data ends at the first descriptor of the
    // bytes before it that a header follows; one of its own prefix inside
    // the data (no header after it) does not end it.
    let head = b"head".to_vec();
    let mut big = head.clone();
    big.extend_from_slice(&common::raw::crc32(&head).to_le_bytes());
    big.extend_from_slice(&4u32.to_le_bytes());
    big.extend_from_slice(&4u32.to_le_bytes());
    big.extend((0..700_000u32).map(|i| (i * 13 % 256) as u8));
    let pkg = unsigned_descriptor_zip(&[
        ("big.bin", &big),
        ("empty.txt", b""),
        ("lib/VERSION", b"unsigned"),
    ]);
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(tmp.path().join("app/big.bin")), big);
    assert_eq!(read(tmp.path().join("app/empty.txt")), b"");
    assert_eq!(read(tmp.path().join("app/lib/VERSION")), b"unsigned");
    let (plain, _) = deploy_over_http(&pkg, false);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn stored_data_holding_its_own_descriptor_falls_back() {
    // Data that contains a valid descriptor of its own first bytes: the
    // walker cuts it there, the central directory disagrees, and the
    // archive is extracted after the download, correctly.
    let head = b"head".to_vec();
    let mut data = head.clone();
    data.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
    data.extend_from_slice(&common::raw::crc32(&head).to_le_bytes());
    data.extend_from_slice(&4u32.to_le_bytes());
    data.extend_from_slice(&4u32.to_le_bytes());
    data.extend_from_slice(b"tail");
    let pkg = raw_zip(&[RawEntry::stored("tricky.bin", &data).with_descriptor()]);
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(!report.streamed);
    assert!(report.stream_fallback.is_some());
    assert_eq!(read(tmp.path().join("app/tricky.bin")), data);
}

#[test]
fn a_descriptor_that_disagrees_with_the_data_falls_back_and_is_refused() {
    let mut entry = RawEntry::deflated("VERSION", b"described").with_descriptor();
    entry.crc ^= 1; // in the descriptor and the central directory
    let pkg = raw_zip(&[entry]);
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(pkg);
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 51, "{err}");
    assert!(!tmp.path().join("app").exists());
}

#[test]
fn names_without_the_utf8_flag_stream_and_decode_as_after_the_download() {
    // Info-ZIP on Linux: UTF-8 bytes without the flag; old DOS tools: CP437.
    // Info-ZIP on Windows: an OEM name with a Unicode Path field (0x7075).
    let oem = b"na\x8bve.txt";
    let mut unicode = vec![1];
    unicode.extend_from_slice(&common::raw::crc32(oem).to_le_bytes());
    unicode.extend_from_slice("na\u{ef}ve-\u{65e5}\u{672c}.txt".as_bytes());
    let pkg = raw_zip(&[
        RawEntry::stored("caf\u{e9}/men\u{fc}.txt", b"utf8"),
        RawEntry::stored(b"r\x82sum\x82.txt", b"cp437"),
        RawEntry::stored(oem, b"unicode path").extra_field(0x7075, &unicode),
    ]);
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    let app = tmp.path().join("app");
    assert_eq!(read(app.join("caf\u{e9}/men\u{fc}.txt")), b"utf8");
    assert_eq!(read(app.join("r\u{e9}sum\u{e9}.txt")), b"cp437");
    let unicode_name = "na\u{ef}ve-\u{65e5}\u{672c}.txt";
    assert_eq!(read(app.join(unicode_name)), b"unicode path");
    let (plain, _) = deploy_over_http(&pkg, false);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn a_directory_listed_after_its_contents_streams() {
    let pkg = raw_zip(&[
        RawEntry::stored("conf/app.ini", b"x=1"),
        RawEntry::dir("conf/").mode(0o040750),
    ]);
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    let tree = snapshot(&tmp.path().join("app"));
    assert_eq!(tree[std::path::Path::new("conf")].1, 0o750);
    // Listed twice is a duplicate, refused as after the download.
    let twice = raw_zip(&[RawEntry::dir("conf/"), RawEntry::dir("conf/")]);
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(twice);
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert_eq!(err.code(), 51, "{err}");
}

#[test]
fn bzip2_lzma_and_deflate64_entries_stream() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/ziplinter");
    let found_me = read(corpus.join("found-me.txt"));
    for method in ["bzip2", "deflate64", "lzma"] {
        let pkg = read(corpus.join(format!("found-me-{method}.zip")));
        let (tmp, report) = deploy_over_http(&pkg, true);
        assert!(report.streamed, "{method}: {:?}", report.stream_fallback);
        assert_eq!(
            read(tmp.path().join("app/found-me.txt")),
            found_me,
            "{method}"
        );
    }
}

/// An entry of `method` holding `packed`, the compressed form of `data`.
fn packed_entry(name: &str, method: u16, packed: &[u8], data: &[u8]) -> RawEntry {
    RawEntry {
        method,
        crc: common::raw::crc32(data),
        size: data.len() as u32,
        ..RawEntry::stored(name, packed)
    }
}

#[test]
fn bzip2_and_deflate64_entries_with_data_descriptors_stream() {
    // The walker decodes them to find where they end, as it does deflate.
    use std::io::{Read, Write};
    let bzip2 = |data: &[u8]| {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/ziplinter");
    let found_me = read(corpus.join("found-me.txt"));
    // 7-Zip's Deflate64 data (nothing in Rust writes it), with a descriptor.
    let deflate64 = {
        let pkg = read(corpus.join("found-me-deflate64.zip"));
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
        let mut packed = Vec::new();
        zip.by_index_raw(0)
            .unwrap()
            .read_to_end(&mut packed)
            .unwrap();
        packed
    };
    let big: Vec<u8> = (0..900_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut z = RawZip::new();
    z.add(&packed_entry("a/found-me.txt", 9, &deflate64, &found_me).with_descriptor());
    z.add(&packed_entry("b/found-me.txt", 12, &bzip2(&found_me), &found_me).with_descriptor());
    z.add(&packed_entry("big.bin", 12, &bzip2(&big), &big).with_descriptor());
    z.add(&packed_entry("empty.txt", 12, &bzip2(b""), b"").with_descriptor());
    z.add(&RawEntry::deflated("VERSION", b"after them").with_descriptor());
    let pkg = z.finish();
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(tmp.path().join("app/a/found-me.txt")), found_me);
    assert_eq!(read(tmp.path().join("app/b/found-me.txt")), found_me);
    assert_eq!(read(tmp.path().join("app/big.bin")), big);
    assert_eq!(read(tmp.path().join("app/empty.txt")), b"");
    assert_eq!(read(tmp.path().join("app/VERSION")), b"after them");
    let (plain, _) = deploy_over_http(&pkg, false);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn bytes_before_the_first_entry_are_skipped_while_streaming() {
    // A launcher script in front of the archive, offsets fixed (`zip -A`)
    // or not: the central directory must agree with the headers found.
    let stub = b"#!/bin/sh\nexec java -jar \"$0\" \"$@\"\n".to_vec();
    let mut z = RawZip::new();
    z.add(&RawEntry::stored("VERSION", b"sfx"));
    z.add(&RawEntry::deflated("lib/app.txt", b"app").with_descriptor());
    let archive = z.finish();
    let pkg = [stub.clone(), archive].concat();
    let (tmp, report) = deploy_over_http(&pkg, true);
    assert!(report.streamed, "{:?}", report.stream_fallback);
    assert_eq!(read(tmp.path().join("app/VERSION")), b"sfx");
    assert_eq!(read(tmp.path().join("app/lib/app.txt")), b"app");
    let (plain, _) = deploy_over_http(&pkg, false);
    assert_eq!(
        snapshot(&tmp.path().join("app")),
        snapshot(&plain.path().join("app"))
    );
}

#[test]
fn a_prefix_without_any_local_header_falls_back() {
    let pkg = [vec![b'x'; 2 << 20], app_zip("late")].concat();
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(pkg);
    let result = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .dest(tmp.path().join("app"))
        .run();
    // Installed from the complete file, or refused by name; never streamed.
    match result {
        Ok(report) => {
            assert!(!report.streamed);
            let why = report.stream_fallback.unwrap();
            assert!(why.contains("no local header"), "{why}");
        }
        Err(e) => assert_eq!(e.class(), zipdeploy::ErrorClass::Archive, "{e}"),
    }
}

#[test]
fn a_restarted_download_falls_back_and_still_verifies() {
    let pkg = zip_of(&[
        Entry::File("VERSION", b"restarted"),
        Entry::File("big.txt", &b"0123456789abcdef".repeat(40_000)),
    ]);
    let server = {
        let pkg = pkg.clone();
        TestServer::start(move |_, n| {
            let reply = Reply::ok(pkg.clone());
            if n == 0 {
                reply.fault(Fault::CloseAfter(pkg.len() / 2))
            } else {
                reply
            }
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(&pkg).to_hex())
        .unwrap()
        .dest(tmp.path().join("app"))
        .retries(1)
        .run()
        .unwrap();
    assert!(!report.streamed);
    let why = report.stream_fallback.unwrap();
    assert!(why.contains("restarted"), "{why}");
    assert_eq!(read(tmp.path().join("app/VERSION")), b"restarted");
}
