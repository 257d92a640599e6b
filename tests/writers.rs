//! Archives made by the writers people use — Info-ZIP `zip`, bsdtar,
//! 7-Zip, Go's `archive/zip`, the JDK's `jar` and Python's `zipfile` — from
//! one source tree, deployed from a path and over HTTP (streamed), and
//! compared with that tree: paths, bytes, types, link targets, modes and
//! mtimes. Where a writer loses information, the reference says what it
//! loses and why.
//!
//! The writers run in `TZ=Asia/Tokyo` (UTC+9, no daylight saving), as on a
//! build host outside UTC. Writers that store a UTC time (Info-ZIP, bsdtar
//! and Go: the 0x5455 field; 7-Zip: the NTFS field) give the exact source
//! times. `jar` and Python store only the MS-DOS time, in the writer's local
//! zone, which the archive does not record: zipdeploy reads it as UTC (its
//! documented rule), so those trees are 9 hours ahead, rounded down to even
//! seconds (DOS resolution) — the same on every host, every time.
//!
//! `unzip` gets some of this wrong, and zipdeploy does not copy it: without
//! a UTC field it reads the DOS time in the extracting host's zone (two
//! hosts of one fleet differ); it decodes names without the UTF-8 flag in
//! archives made on Windows through the OEM code page, mangling UTF-8
//! names; and archives made on FAT (no Unix modes) get 0666/0777 less the
//! umask — world-writable under the umask 0 of many containers — where
//! zipdeploy gives 0644/0755.
//!
//! The tools are installed by `.ci/run` (zip, libarchive-tools, 7zip,
//! default-jdk-headless, golang-go, python3); a missing one fails the test.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use zipdeploy::Deploy;

/// Seconds from UTC of the zone the writers run in.
const WRITER_ZONE: &str = "Asia/Tokyo";
const WRITER_OFFSET: i64 = 9 * 3600;

/// One node of a tree: kind, permission bits, bytes (a link's target) and
/// mtime in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    data: Vec<u8>,
    mtime: i64,
}

type Tree = BTreeMap<PathBuf, Node>;

/// Reads a tree (links not followed), without its root.
fn tree_of(root: &Path) -> Tree {
    snapshot(root)
        .into_iter()
        .map(|(rel, (kind, mode, data))| {
            let meta = std::fs::symlink_metadata(root.join(&rel)).unwrap();
            let mtime = meta.mtime();
            (
                rel,
                Node {
                    kind,
                    mode,
                    data,
                    mtime,
                },
            )
        })
        .collect()
}

/// The source tree every writer packs: files, nested and empty directories,
/// an executable, a symlink, a non-ASCII name, fixed odd-second mtimes (so
/// that DOS rounding shows).
fn make_source(root: &Path) {
    let mkdir = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    let write = |p: &str, data: &[u8]| std::fs::write(root.join(p), data).unwrap();
    for dir in ["bin", "assets/css", "assets/img", "empty", "café"] {
        mkdir(dir);
    }
    write("index.html", b"<h1>hello</h1>\n");
    write("bin/run.sh", b"#!/bin/sh\necho run\n");
    chmod(&root.join("bin/run.sh"), 0o755);
    write("assets/css/site.css", b"body { color: black }\n");
    let logo: Vec<u8> = (0..200_000u64).map(|i| (i * i % 251) as u8).collect();
    write("assets/img/logo.bin", &logo);
    write("café/menü.txt", b"caf\xc3\xa9\n");
    write("private.txt", b"secret\n");
    chmod(&root.join("private.txt"), 0o600);
    std::os::unix::fs::symlink("bin/run.sh", root.join("latest")).unwrap();
    // Times last, deepest first, so no later write changes a directory's.
    let mut paths: Vec<PathBuf> = snapshot(root).into_keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, rel) in paths.iter().enumerate() {
        let t = 1_600_000_001 + 1_000 * i as i64; // odd seconds
        let status = Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(format!("@{t}"))
            .arg(root.join(rel))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// What a writer keeps of the source tree.
struct Fidelity {
    /// Unix modes stored; without them files get 0644 and directories 0755.
    modes: bool,
    /// Symlinks stored as links; without, as a copy of the target file.
    symlinks: bool,
    /// A UTC time stored; without, the DOS time in the writer's zone.
    utc_times: bool,
    /// Only regular files, no time at all (a zero DOS date, as in Go module
    /// zips): links and empty directories are lost, every time is
    /// 1980-01-01 00:00:00 UTC.
    files_only_no_time: bool,
    /// Entries the writer adds (jar's manifest), checked apart.
    added: &'static [&'static str],
}

struct Writer {
    name: &'static str,
    fidelity: Fidelity,
    /// Whether zipdeploy extracts it while it downloads.
    streams: bool,
}

const EXACT: Fidelity = Fidelity {
    modes: true,
    symlinks: true,
    utc_times: true,
    files_only_no_time: false,
    added: &[],
};

fn writers() -> Vec<Writer> {
    vec![
        // Info-ZIP: UTF-8 names without the UTF-8 flag, 0x5455 times.
        Writer {
            name: "infozip",
            fidelity: EXACT,
            streams: true,
        },
        // bsdtar (macOS and Windows `tar -a`): `./` names, the root as `./`,
        // data descriptors.
        Writer {
            name: "bsdtar",
            fidelity: EXACT,
            streams: true,
        },
        // 7-Zip 21+ on Linux stores Unix modes and links; NTFS times.
        Writer {
            name: "7zip",
            fidelity: EXACT,
            streams: true,
        },
        // Go: data descriptors, 0x5455 times; Deflate as most tools set it,
        // and FileInfoHeader's default Store.
        Writer {
            name: "go",
            fidelity: EXACT,
            streams: true,
        },
        Writer {
            name: "go-store",
            fidelity: EXACT,
            streams: true,
        },
        // A Go module zip (`zip.Writer.Create`, as golang.org/x/mod/zip):
        // files only, no modes, a zero (invalid) DOS date.
        Writer {
            name: "go-module",
            fidelity: Fidelity {
                modes: false,
                files_only_no_time: true,
                ..EXACT
            },
            streams: true,
        },
        // jar: no modes, no links (it follows them), local DOS times, data
        // descriptors, a manifest of its own.
        Writer {
            name: "jar",
            fidelity: Fidelity {
                modes: false,
                symlinks: false,
                utc_times: false,
                files_only_no_time: false,
                added: &["META-INF", "META-INF/MANIFEST.MF"],
            },
            streams: true,
        },
        // Python zipfile writing to a pipe: data descriptors, local DOS
        // times; deflated, and stored (zipfile's default).
        Writer {
            name: "python",
            fidelity: Fidelity {
                utc_times: false,
                ..EXACT
            },
            streams: true,
        },
        Writer {
            name: "python-stored",
            fidelity: Fidelity {
                utc_times: false,
                ..EXACT
            },
            streams: true,
        },
    ]
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .env("TZ", WRITER_ZONE)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); .ci/run installs it"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packs `src` into `out` with `writer`.
fn pack(writer: &str, src: &Path, out: &Path, work: &Path) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/writers");
    match writer {
        "infozip" => run(
            Command::new("zip")
                .args(["-q", "-r", "-y"])
                .arg(out)
                .arg(".")
                .current_dir(src),
            "zip",
        ),
        "bsdtar" => run(
            Command::new("bsdtar")
                .args(["--format", "zip", "-cf"])
                .arg(out)
                .arg("-C")
                .arg(src)
                .arg("."),
            "bsdtar",
        ),
        "7zip" => run(
            Command::new("7zz")
                .args(["a", "-tzip", "-snl", "-bd"])
                .arg(out)
                .arg(".")
                .current_dir(src),
            "7zz",
        ),
        "go" | "go-store" | "go-module" => run(
            Command::new("go")
                .arg("run")
                .arg(here.join("zip_writer.go"))
                .arg(src)
                .arg(out)
                .args(writer.strip_prefix("go-"))
                .current_dir(work),
            "go",
        ),
        "jar" => run(
            Command::new("jar")
                .arg("cf")
                .arg(out)
                .arg("-C")
                .arg(src)
                .arg("."),
            "jar",
        ),
        "python" | "python-stored" => {
            // To a pipe, so that zipfile cannot seek back.
            let mut child = Command::new("python3")
                .arg(here.join("zip_writer.py"))
                .arg(src)
                .args((writer == "python-stored").then_some("stored"))
                .env("TZ", WRITER_ZONE)
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3");
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut bytes).unwrap();
            assert!(child.wait().unwrap().success());
            std::fs::write(out, bytes).unwrap();
        }
        other => panic!("unknown writer {other}"),
    }
}

/// The tree a writer's archive should install as: the source, less what the
/// writer does not store.
fn reference(source: &Tree, fidelity: &Fidelity, umask: u32) -> Tree {
    if fidelity.files_only_no_time {
        let files = source.iter().filter(|(_, node)| node.kind == 'f');
        let parents = files.clone().flat_map(|(path, _)| path.ancestors().skip(1));
        let dirs = parents.filter(|p| !p.as_os_str().is_empty());
        let node = |kind: char, mode: u32, data: &[u8]| Node {
            kind,
            mode: mode & !umask,
            data: data.to_vec(),
            mtime: 315_532_800, // 1980-01-01T00:00:00Z
        };
        return dirs
            .map(|dir| (dir.to_path_buf(), node('d', 0o755, b"")))
            .chain(files.map(|(path, f)| (path.clone(), node('f', 0o644, &f.data))))
            .collect();
    }
    source
        .iter()
        .map(|(path, node)| {
            let mut node = node.clone();
            if !fidelity.symlinks && node.kind == 'l' {
                let target = path.parent().unwrap().join(
                    std::str::from_utf8(&node.data).unwrap(), // relative, inside
                );
                node = source[&target].clone();
            }
            if !fidelity.modes {
                node.mode = if node.kind == 'd' { 0o755 } else { 0o644 } & !umask;
            }
            if node.kind == 'l' {
                node.mode = 0;
            }
            if !fidelity.utc_times {
                // Local DOS time read as UTC, rounded down to even seconds.
                let local = node.mtime + WRITER_OFFSET;
                node.mtime = local - local.rem_euclid(2);
            }
            (path.clone(), node)
        })
        .collect()
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn every_common_writer_installs_as_its_source_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    make_source(&src);
    let source = tree_of(&src);
    assert_eq!(source.len(), 13, "{:?}", source.keys());
    let umask = umask();

    for writer in writers() {
        let name = writer.name;
        let work = tmp.path().join(name);
        std::fs::create_dir(&work).unwrap();
        let pkg = work.join("pkg.zip");
        pack(name, &src, &pkg, &work);
        let bytes = read(&pkg);

        let local = Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(work.join("local"))
            .durable(false)
            .run()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!local.streamed);
        let server = TestServer::serving(bytes);
        let streamed = Deploy::new(&server.url("/pkg.zip"))
            .unwrap()
            .dest(work.join("net"))
            .durable(false)
            .run()
            .unwrap_or_else(|e| panic!("{name} over HTTP: {e}"));
        assert_eq!(
            streamed.streamed, writer.streams,
            "{name}: {:?}",
            streamed.stream_fallback
        );

        let mut got = tree_of(&work.join("local"));
        assert_eq!(got, tree_of(&work.join("net")), "{name}: streamed differs");
        for added in writer.fidelity.added {
            assert!(got.remove(Path::new(added)).is_some(), "{name}: {added}");
        }
        let want = reference(&source, &writer.fidelity, umask);
        for (path, node) in &want {
            assert_eq!(got.get(path), Some(node), "{name}: {}", path.display());
        }
        assert_eq!(got.len(), want.len(), "{name}: {:?}", got.keys());
        // DEST keeps its own mode whatever a `./` entry says.
        let root = std::fs::metadata(work.join("local")).unwrap().mode() & 0o777;
        assert_eq!(root, 0o755 & !umask, "{name}");
    }
}
