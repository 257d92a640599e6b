//! Durable deploys (`Deploy::durable`, `--sync`): the same tree as any
//! other deploy, writeback started on the way, and the deploy's own download
//! dropped before the final flush — never the package it was given, nor the
//! cache's copy.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use zipdeploy::{Cache, Deploy, Report, Sha256Digest};

/// Many small files (background flushes), one large one (writeback by
/// steps), directories and a symlink.
fn package() -> Vec<u8> {
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i % 249) as u8).collect();
    let small: Vec<(String, Vec<u8>)> = (0..2_100)
        .map(|i| {
            let name = format!("vendor/p{}/f{i}.php", i % 37);
            (name, format!("<?php // {i}\n").into_bytes())
        })
        .collect();
    let mut entries = vec![
        Entry::File("index.php", b"<?php echo 'durable';\n"),
        Entry::File("public/video.bin", &big),
        Entry::FileMode("bin/start.sh", b"#!/bin/sh\n", 0o755),
        Entry::Symlink("current", "public/video.bin"),
    ];
    entries.extend(small.iter().map(|(n, d)| Entry::File(n, d)));
    zip_of(&entries)
}

fn deploy(location: &str, pkg: &[u8], dest: &Path, durable: bool) -> Report {
    Deploy::new(location)
        .unwrap()
        .sha256(&Sha256Digest::of(pkg).to_hex())
        .unwrap()
        .dest(dest)
        .durable(durable)
        .run()
        .unwrap()
}

#[test]
fn a_durable_deploy_installs_the_same_tree_and_leaves_no_download() {
    let pkg = package();
    let server = TestServer::serving(pkg.clone());
    let tmp = tempfile::tempdir().unwrap();
    for stream in [true, false] {
        let dest = tmp.path().join(format!("durable-{stream}"));
        let report = Deploy::new(&server.url("/app.zip"))
            .unwrap()
            .sha256(&sha(&pkg))
            .unwrap()
            .dest(&dest)
            .stream(stream)
            .durable(true)
            .run()
            .unwrap();
        assert_eq!(report.streamed, stream, "{:?}", report.stream_fallback);
        assert_eq!(report.files, 2_103);
        let plain = tmp.path().join(format!("plain-{stream}"));
        deploy(&server.url("/app.zip"), &pkg, &plain, false);
        assert_eq!(snapshot(&dest), snapshot(&plain));
        // Nothing left of the download (truncated, then removed).
        let state = tmp.path().join(format!(".durable-{stream}.zipdeploy"));
        let left: Vec<String> = names_in(&state)
            .into_iter()
            .filter(|n| n.ends_with(".zip") || n.starts_with("staging"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_durable_deploy_of_a_local_package_leaves_the_package_intact() {
    let pkg = package();
    let tmp = tempfile::tempdir().unwrap();
    // 0644: extracted in place; 0666 (others can write): from a private copy.
    for mode in [0o644, 0o666] {
        let path = tmp.path().join(format!("app-{mode:o}.zip"));
        std::fs::write(&path, &pkg).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let dest = tmp.path().join(format!("app-{mode:o}"));
        let report = deploy(path.to_str().unwrap(), &pkg, &dest, true);
        assert_eq!(report.files, 2_103);
        assert_eq!(
            read(&path),
            pkg,
            "the package given (mode {mode:o}) was changed"
        );
        assert_eq!(read(dest.join("index.php")), b"<?php echo 'durable';\n");
    }
}

#[test]
fn a_durable_deploy_keeps_the_cached_package_whole() {
    let pkg = package();
    let server = TestServer::serving(pkg.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dest = tmp.path().join("app");
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .dest(&dest)
        .cache(&cache)
        .durable(true)
        .run()
        .unwrap();
    assert!(!report.cache_hit);
    let entry = Cache::new(&cache).entry_path(&Sha256Digest::of(&pkg));
    assert_eq!(read(&entry), pkg, "the cached package was changed");
    // And it serves the next deploy.
    let again = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .sha256(&sha(&pkg))
        .unwrap()
        .dest(tmp.path().join("other"))
        .cache(&cache)
        .durable(true)
        .run()
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(snapshot(&dest), snapshot(&tmp.path().join("other")));
}
