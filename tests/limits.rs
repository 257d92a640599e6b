//! Limits that must hold before memory is spent or anything is created:
//! path depth and length, the entry count of the end record, and the
//! metadata the zip crate would keep. The memory tests run the example CLI
//! in a child process whose address space is capped: the archive must be
//! refused with the limit error (exit status 6), never abort.

mod common;
use common::cli_path;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::raw::{crc32, raw_zip, RawEntry};
use common::*;
use zipdeploy::{Deploy, Error, Limit, Limits};

/// Address space of the capped child: far below what the hostile archives
/// took before they were refused (4 GB, 430 MB), far above what the CLI
/// needs to refuse them.
const ADDRESS_SPACE: &str = "--as=268435456"; // 256 MiB

/// Runs the CLI under `prlimit` with the given limits (`--as=...`).
fn capped_cli(limits: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new("prlimit");
    cmd.args(limits)
        .arg("--")
        .arg(cli_path())
        .args(args)
        .arg("--quiet")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.output().expect("run prlimit")
}

/// Exit status 6 (limit) with `why` on stderr, and not a signal.
fn assert_limit_exit(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(6),
        "status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(stderr.contains(why), "{stderr:?} lacks {why:?}");
}

/// Entries `depth` directories deep, the name just under the 64 KiB a ZIP
/// name can hold when `depth` is 32,000.
fn deep_archive(entries: usize, depth: usize) -> Vec<u8> {
    let list: Vec<RawEntry> = (0..entries)
        .map(|i| RawEntry::stored(format!("{i}/{}f", "a/".repeat(depth - 2)), b"x"))
        .collect();
    raw_zip(&list)
}

#[test]
fn planning_32000_deep_entries_under_a_capped_address_space_hits_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("deep.zip");
    std::fs::write(&pkg, deep_archive(4, 32_000)).unwrap();
    let dest = tmp.path().join("app");
    let out = capped_cli(
        &[ADDRESS_SPACE],
        &[
            "--url",
            pkg.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ],
    );
    assert_limit_exit(&out, "path depth limit exceeded: 32000 > 256");
    assert!(!dest.exists());
}

#[test]
fn streaming_32000_deep_entries_under_a_capped_address_space_hits_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serving(deep_archive(4, 32_000));
    let dest = tmp.path().join("app");
    let out = capped_cli(
        &[ADDRESS_SPACE],
        &[
            "--url",
            &server.url("/deep.zip"),
            "--dest",
            dest.to_str().unwrap(),
        ],
    );
    assert_limit_exit(&out, "path depth limit exceeded: 32000 > 256");
    assert!(!dest.exists());
}

/// Writes an archive of `entries` central records straight to `path`: one
/// empty stored file that every record points to, and ZIP64 end records.
/// The records are valid one by one (the zip crate parses them all); only
/// their overlap is wrong, which planning would find later. Each record
/// carries a comment of `comment` bytes.
fn write_many_entries(path: &Path, entries: u64, comment: u16) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut put = |bytes: &[u8]| out.write_all(bytes).unwrap();
    // The local header of "f" at offset 0.
    put(&0x0403_4b50u32.to_le_bytes());
    put(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x5b]); // version, flags, stored, time, date
    put(&crc32(b"").to_le_bytes());
    put(&[0; 8]); // sizes
    put(&1u16.to_le_bytes());
    put(&0u16.to_le_bytes());
    put(b"f");
    let cd_start = 31u64;
    let mut cd_size = 0u64;
    for i in 0..entries {
        let name = format!("{i:07}");
        put(&0x0201_4b50u32.to_le_bytes());
        put(&[20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x5b]);
        put(&[0; 12]); // CRC, sizes
        put(&(name.len() as u16).to_le_bytes());
        put(&0u16.to_le_bytes()); // extra
        put(&comment.to_le_bytes());
        put(&[0; 4]); // disk, internal attributes
        put(&(0o100644u32 << 16).to_le_bytes());
        put(&0u32.to_le_bytes()); // local header offset
        put(name.as_bytes());
        put(&vec![b'c'; usize::from(comment)]);
        cd_size += 46 + name.len() as u64 + u64::from(comment);
    }
    let zip64_end = cd_start + cd_size;
    put(&0x0606_4b50u32.to_le_bytes());
    put(&44u64.to_le_bytes());
    put(&[45, 3, 45, 0]);
    put(&[0; 8]); // disk numbers
    put(&entries.to_le_bytes());
    put(&entries.to_le_bytes());
    put(&cd_size.to_le_bytes());
    put(&cd_start.to_le_bytes());
    put(&0x0706_4b50u32.to_le_bytes());
    put(&0u32.to_le_bytes());
    put(&zip64_end.to_le_bytes());
    put(&1u32.to_le_bytes());
    put(&0x0605_4b50u32.to_le_bytes());
    put(&[0; 4]);
    put(&[0xff; 4]); // entry counts: see ZIP64
    put(&[0xff; 8]); // size and offset: see ZIP64
    put(&0u16.to_le_bytes());
    out.flush().unwrap();
}

#[test]
fn two_million_entries_are_refused_from_the_end_record_under_a_capped_address_space() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("many.zip");
    write_many_entries(&pkg, 2_000_000, 0);
    let dest = tmp.path().join("app");
    let out = capped_cli(
        &[ADDRESS_SPACE],
        &[
            "--url",
            pkg.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ],
    );
    assert_limit_exit(&out, "entry count limit exceeded: 2000000 > 1000000");
    assert!(!dest.exists());
}

#[test]
fn entry_comments_are_refused_before_the_parser_keeps_them_under_a_capped_address_space() {
    // 2,100 comments of 64 KiB: 137 MB the zip crate would keep, over the
    // default 64 MiB of metadata.
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("comments.zip");
    write_many_entries(&pkg, 2_100, u16::MAX);
    let dest = tmp.path().join("app");
    let out = capped_cli(
        &["--as=134217728"], // 128 MiB
        &[
            "--url",
            pkg.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ],
    );
    assert_limit_exit(
        &out,
        "central directory metadata limit exceeded: 67173375 > 67108864 (entry \"0001024\")",
    );
    assert!(!dest.exists());
}

/// An archive whose central records carry `comment` and `extra` bytes.
fn with_metadata(entries: usize, comment: &[u8], extra: &[u8]) -> Vec<u8> {
    let list: Vec<RawEntry> = (0..entries)
        .map(|i| RawEntry::stored(format!("f{i}"), b"x"))
        .collect();
    let plain = raw_zip(&list);
    // Rebuild the central directory with the metadata in each record.
    let end = plain.len() - 22;
    let cd_start = u32::from_le_bytes(plain[end + 16..end + 20].try_into().unwrap()) as usize;
    let mut out = plain[..cd_start].to_vec();
    let mut pos = cd_start;
    while pos < end {
        let name_len = u16::from_le_bytes([plain[pos + 28], plain[pos + 29]]) as usize;
        let mut record = plain[pos..pos + 46 + name_len].to_vec();
        record[30..32].copy_from_slice(&(extra.len() as u16).to_le_bytes());
        record[32..34].copy_from_slice(&(comment.len() as u16).to_le_bytes());
        record.extend_from_slice(extra);
        record.extend_from_slice(comment);
        out.extend_from_slice(&record);
        pos += 46 + name_len;
    }
    let cd_size = (out.len() - cd_start) as u32;
    let mut eocd = plain[end..].to_vec();
    eocd[12..16].copy_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&eocd);
    out
}

/// Deploys `archive` from a local file and over HTTP (extracted while it
/// streams); both must give the same result.
fn deploy_both(archive: &[u8], limits: Limits) -> Result<(), Error> {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("pkg.zip");
    std::fs::write(&pkg, archive).unwrap();
    let local = Deploy::new(pkg.to_str().unwrap())
        .unwrap()
        .dest(tmp.path().join("local"))
        .limits(limits.clone())
        .durable(false)
        .run();
    let server = TestServer::serving(archive.to_vec());
    let streamed = Deploy::new(&server.url("/pkg.zip"))
        .unwrap()
        .dest(tmp.path().join("streamed"))
        .limits(limits)
        .durable(false)
        .run();
    match (local, streamed) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert!(!tmp.path().join("local").exists());
            assert!(!tmp.path().join("streamed").exists());
            Err(a)
        }
        (a, b) => panic!("local {a:?} but streamed {b:?}"),
    }
}

#[test]
fn comments_and_extra_fields_beyond_the_metadata_limit_are_refused() {
    let limits = Limits {
        max_metadata: 1 << 20,
        ..Limits::default()
    };
    // 20 comments of 64 KiB: 1.3 MB the zip crate would keep.
    let comments = with_metadata(20, &[b'c'; 65_535], b"");
    let err = deploy_both(&comments, limits.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::Metadata,
                max: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "central directory metadata limit exceeded: 1114095 > 1048576 (entry \"f16\")"
        ),
        "{err}"
    );
    // Empty extra fields cost the parser more than their 4 bytes each.
    let empty_fields: Vec<u8> = [0xca, 0xfe, 0, 0].repeat(16_000);
    let err = deploy_both(&with_metadata(2, b"", &empty_fields), limits.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("central directory metadata limit exceeded"),
        "{err}"
    );
    // A comment each, as some tools write them, is fine.
    deploy_both(&with_metadata(20, b"built by CI", b""), limits).unwrap();
}

#[test]
fn implied_directories_count_as_entries() {
    let limits = Limits {
        max_entries: 5,
        ..Limits::default()
    };
    // Two files, four directories they imply.
    let archive = raw_zip(&[
        RawEntry::stored("a/b/c/one", b"1"),
        RawEntry::stored("a/d/two", b"2"),
    ]);
    let err = deploy_both(&archive, limits).unwrap_err();
    assert_eq!(err.to_string(), "entry count limit exceeded: 6 > 5");
    let six = Limits {
        max_entries: 6,
        ..Limits::default()
    };
    deploy_both(&archive, six).unwrap();
}

/// Levels of directories below `dir`, following the first subdirectory.
fn depth_below(dir: &Path) -> usize {
    let mut dir = dir.to_path_buf();
    let mut depth = 0;
    loop {
        let Some(sub) = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        else {
            return depth;
        };
        dir.push(sub.file_name());
        depth += 1;
    }
}

/// The deploy the issue describes: a package later refused for its digest
/// had streamed a 1,500-level tree into staging, which then could not be
/// removed with few descriptors. The walker now refuses the depth before it
/// creates a directory: while the download stalls after the deep entry,
/// staging holds nothing.
#[test]
fn a_deep_entry_is_refused_before_streaming_creates_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // Padding after the deep entry: the walker reads 64 KiB at a time.
    let archive = raw_zip(&[
        RawEntry::stored(format!("{}f", "a/".repeat(1_499)), b"x"),
        RawEntry::stored("padding", &[0; 256 << 10]),
    ]);
    let server = TestServer::start(move |_, _| {
        Reply::ok(archive.clone()).fault(Fault::Trickle(96 << 10, Duration::from_millis(500)))
    });
    let dest = tmp.path().join("app");
    let wrong: zipdeploy::Sha256Digest = "0".repeat(64).parse().unwrap();
    let deploy = Deploy::new(&server.url("/deep.zip"))
        .unwrap()
        .dest(&dest)
        .digest(wrong)
        .durable(false);
    let result = std::thread::spawn(move || deploy.run());
    let state = tmp.path().join(".app.zipdeploy");
    let staging = || {
        let listing = std::fs::read_dir(&state).into_iter().flatten().flatten();
        listing.map(|e| e.path()).find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("staging-")
        })
    };
    let mut deepest = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(staging) = staging() {
            deepest = deepest.max(depth_below(&staging));
        }
    }
    let err = result.join().unwrap().unwrap_err();
    assert_eq!(err.code(), 40, "{err}");
    assert_eq!(deepest, 0, "the walker created directories");
    assert!(staging().is_none());
    assert!(!dest.exists());
}
