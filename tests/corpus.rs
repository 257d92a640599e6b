//! Every archive of `../shared/corpus/ziplinter/` goes through the whole
//! pipeline onto a DEST holding a previous tree: it either installs exactly
//! what the archive holds, or is refused with the named error listed here,
//! leaving the previous tree byte-for-byte intact and nothing beside DEST.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;
use zipdeploy::Deploy;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/ziplinter")
}

/// Expected outcome per archive: `Ok` or the error code, and why.
fn expectations() -> BTreeMap<&'static str, Result<(), (u32, &'static str)>> {
    let unsafe_ = |why| Err((52, why));
    let ambiguous = |why| Err((51, why));
    let unsupported = |why| Err((53, why));
    BTreeMap::from([
        ("absolute-name.zip", unsafe_("absolute path")),
        ("binary_comment.zip", Ok(())),
        ("concatenated.zip", ambiguous("local file header missing")),
        ("cp-437.zip", Ok(())),
        ("crc32-not-streamed.zip", Ok(())),
        ("dd.zip", Ok(())),
        ("found-me-bzip2.zip", Ok(())),
        ("found-me-deflate64.zip", Ok(())),
        ("found-me-lzma.zip", Ok(())),
        ("found-me-zstd.zip", unsupported("compression method Zstd")),
        ("go-no-datadesc-sig.zip", Ok(())),
        ("go-with-datadesc-sig.zip", Ok(())),
        ("long_file_name.zip", unsafe_("longer than 255 bytes")),
        (
            "long_file_name_comment.zip",
            unsafe_("longer than 255 bytes"),
        ),
        ("meta.zip", Ok(())),
        ("readme.zip", Ok(())),
        ("relative.zip", unsafe_("'..' path component")),
        ("same-names.zip", ambiguous("duplicate")),
        ("secret-a.zip", unsupported("encrypted")),
        ("secret.zip", unsupported("encrypted")),
        ("shift-jis.zip", Ok(())),
        // Info-ZIP's stdin entry `-`: a FIFO with data, written as a file.
        ("streaming.zip", Ok(())),
        ("symlink.zip", unsafe_("points outside the tree")),
        ("test-mismatched-names.zip", ambiguous("filename mismatch")),
        ("test-more-trailing-junk.zip", ambiguous("EOCD")),
        ("test-trailing-junk.zip", Ok(())),
        ("test.zip", Ok(())),
        ("test_dir_no_slash.zip", unsafe_("NUL byte in name")),
        (
            "test_mismatched_compression_central.zip",
            ambiguous("compression method mismatch"),
        ),
        (
            "test_mismatched_compression_local.zip",
            ambiguous("compression method mismatch"),
        ),
        ("test_with_extra_data_before_central_directory.zip", Ok(())),
        ("time-22738.zip", Ok(())),
        ("time-7zip.zip", Ok(())),
        ("time-go.zip", Ok(())),
        ("time-infozip.zip", Ok(())),
        ("time-osx.zip", Ok(())),
        ("time-win7.zip", Ok(())),
        ("time-winrar.zip", Ok(())),
        ("time-winzip.zip", Ok(())),
        ("unix.zip", Ok(())),
        ("unused-range.zip", ambiguous("local file header missing")),
        ("utf8-7zip.zip", Ok(())),
        ("utf8-infozip.zip", Ok(())),
        ("utf8-osx.zip", Ok(())),
        ("utf8-winrar.zip", Ok(())),
        ("utf8-winzip.zip", Ok(())),
        ("wachtwoord.zip", unsupported("encrypted")),
        ("wine-zeroed.zip", Ok(())),
        ("winxp.zip", Ok(())),
        ("zip64-2.zip", Ok(())),
        ("zip64.zip", Ok(())),
        ("zip_password.zip", unsupported("encrypted")),
    ])
}

/// Installable archives that are extracted after the download rather than
/// while it streams, and why: none since stored entries whose data
/// descriptor has no signature (`go-no-datadesc-sig.zip`) stream too.
const NOT_STREAMED: [(&str, &str); 0] = [];

/// The corpus archives as (name, bytes); `.zip.bz2` files are decompressed.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus at ../shared/corpus/ziplinter") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".bz2") {
            let mut bytes = Vec::new();
            bzip2::read::BzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_end(&mut bytes)
                .unwrap();
            out.push((stem.to_string(), bytes));
        } else if name.ends_with(".zip") {
            out.push((name, read(&path)));
        }
    }
    out.sort();
    out
}

/// What the archive holds, read independently with the zip crate: files by
/// path with their bytes, directories, symlinks with their targets.
fn expected_tree(bytes: &[u8]) -> BTreeMap<PathBuf, (char, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut tree = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let path = PathBuf::from(name.trim_end_matches('/'));
        for ancestor in path.ancestors().skip(1) {
            if !ancestor.as_os_str().is_empty() {
                tree.insert(ancestor.to_path_buf(), ('d', Vec::new()));
            }
        }
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        let kind = if f.is_dir() {
            'd'
        } else if f.is_symlink() {
            'l'
        } else {
            'f'
        };
        if kind == 'd' {
            data.clear();
        }
        tree.insert(path, (kind, data));
    }
    tree
}

#[test]
fn every_corpus_archive_installs_exactly_or_is_refused_by_name() {
    let expected = expectations();
    let archives = corpus();
    let names: Vec<&str> = archives.iter().map(|(n, _)| n.as_str()).collect();
    let listed: Vec<&str> = expected.keys().copied().collect();
    assert_eq!(names, listed, "corpus and expectations differ");

    let tmp = tempfile::tempdir().unwrap();
    let previous = app_zip("previous");
    let mut installed = 0;
    let mut refused = 0;
    for (name, bytes) in &archives {
        let root = tmp.path().join(name);
        std::fs::create_dir(&root).unwrap();
        let dest = root.join("app");
        let pkg = root.join("pkg.zip");
        std::fs::write(&pkg, &previous).unwrap();
        Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(&dest)
            .durable(false)
            .run()
            .unwrap();
        let before = snapshot(&dest);
        std::fs::write(&pkg, bytes).unwrap();

        let result = Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(&dest)
            .durable(false)
            .run();
        let outside = names_in(&root);
        assert_eq!(
            outside,
            [".app.zipdeploy", "app", "pkg.zip"],
            "{name}: files beside DEST"
        );
        // Over HTTP the archive is extracted while it streams in: same verdict.
        let net = tmp.path().join(format!("{name}-net"));
        let served = TestServer::serving(bytes.clone());
        let streamed = Deploy::new(&served.url("/pkg.zip"))
            .unwrap()
            .dest(net.join("app"))
            .durable(false)
            .run();
        match (&result, &streamed) {
            (Ok(_), Ok(report)) => {
                assert_eq!(snapshot(&net.join("app")), snapshot(&dest), "{name}");
                // Every layout that real writers produce streams.
                match NOT_STREAMED.iter().find(|(n, _)| n == name) {
                    Some((_, why)) => {
                        assert!(!report.streamed, "{name}");
                        let fallback = report.stream_fallback.as_deref().unwrap_or("");
                        assert!(fallback.contains(why), "{name}: {fallback}");
                    }
                    None => assert!(report.streamed, "{name}: {:?}", report.stream_fallback),
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name}"),
            (a, b) => panic!("{name}: local {a:?}, streamed {b:?}"),
        }
        match (&result, &expected[name.as_str()]) {
            (Ok(_), Ok(())) => {
                installed += 1;
                let got: BTreeMap<PathBuf, (char, Vec<u8>)> = snapshot(&dest)
                    .into_iter()
                    .map(|(p, (kind, _mode, data))| (p, (kind, data)))
                    .collect();
                assert_eq!(
                    got,
                    expected_tree(bytes),
                    "{name}: tree differs from the archive"
                );
            }
            (Err(e), Err((code, why))) => {
                refused += 1;
                assert_eq!(e.code(), *code, "{name}: {e}");
                assert!(e.to_string().contains(why), "{name}: {e:?} lacks {why:?}");
                assert!(e.to_string().len() < 600, "{name}: message too long");
                assert_eq!(snapshot(&dest), before, "{name}: previous tree changed");
            }
            (got, want) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
    }
    assert!(
        installed >= 25 && refused >= 15,
        "{installed} installed, {refused} refused"
    );
}

#[test]
fn known_contents_come_out_byte_for_byte() {
    let dir = corpus_dir();
    let found_me = read(dir.join("found-me.txt"));
    let tmp = tempfile::tempdir().unwrap();
    for method in ["bzip2", "deflate64", "lzma"] {
        let out = tmp.path().join(method);
        zipdeploy::extract::extract_archive(
            &dir.join(format!("found-me-{method}.zip")),
            &out,
            &Default::default(),
            None,
        )
        .unwrap();
        assert_eq!(read(out.join("found-me.txt")), found_me, "{method}");
    }
    let out = tmp.path().join("test");
    zipdeploy::extract::extract_archive(&dir.join("test.zip"), &out, &Default::default(), None)
        .unwrap();
    assert_eq!(read(out.join("test.txt")), b"This is a test text file.\n");
    assert_eq!(
        read(out.join("gophercolor16x16.png")),
        read(dir.join("gophercolor16x16.png"))
    );
}
