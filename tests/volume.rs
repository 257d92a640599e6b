//! A DEST that is a mount point (a Kubernetes `emptyDir`, a Docker volume):
//! it cannot be renamed, so the tree goes one level down, into
//! `DEST/current`, with its state in `DEST/.current.zipdeploy/`. Every
//! guarantee of a plain DEST holds there: exchange, no-op, rollback, status,
//! failures that leave it as it was; and what cannot work is refused before
//! anything is downloaded.
//!
//! Each test mounts in a mount namespace of its own (see `common::mounts`).

mod common;
use common::cli_path;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::mounts::{in_mount_namespace, Mounted};
use common::*;
use zipdeploy::{Deploy, Error, Layout, Report, Sha256Digest};

/// How the volume is made.
#[derive(Clone, Copy)]
enum Volume {
    Tmpfs,
    /// A directory of the same filesystem, bind-mounted.
    Bind,
}

/// A temp dir with a volume mounted at `<tmp>/app`.
struct Setup {
    _mount: Mounted,
    tmp: tempfile::TempDir,
    dest: PathBuf,
}

impl Setup {
    fn new(volume: Volume) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        fs::create_dir(&dest).unwrap();
        let mount = match volume {
            Volume::Tmpfs => Mounted::tmpfs(&dest),
            Volume::Bind => {
                let source = tmp.path().join("volume-source");
                fs::create_dir(&source).unwrap();
                Mounted::bind(&source, &dest)
            }
        };
        Setup {
            _mount: mount,
            tmp,
            dest,
        }
    }

    fn tree(&self) -> PathBuf {
        self.dest.join("current")
    }

    fn deploy(&self, url: &str, package: &[u8]) -> Result<Report, Error> {
        Deploy::new(url)
            .unwrap()
            .sha256(&Sha256Digest::of(package).to_hex())
            .unwrap()
            .dest(&self.dest)
            .durable(false)
            .run()
    }
}

/// Served as `/corrupt.zip`: not an archive.
const CORRUPT: &[u8] = b"PK\x03\x04 this is no archive";

fn packages_server() -> (TestServer, Vec<u8>, Vec<u8>) {
    let (v1, v2) = (app_zip("1"), app_zip("2"));
    let server = {
        let (v1, v2) = (v1.clone(), v2.clone());
        TestServer::start(move |req, _| match req.path.as_str() {
            "/v1.zip" => Reply::ok(v1.clone()),
            "/v2.zip" => Reply::ok(v2.clone()),
            "/corrupt.zip" => Reply::ok(CORRUPT),
            _ => Reply::status(404),
        })
    };
    (server, v1, v2)
}

/// The reference tree of `package`, installed into a plain directory.
fn reference(tmp: &Path, name: &str, package: &[u8]) -> Snapshot {
    let dir = tmp.join(format!("reference-{name}"));
    fs::create_dir(&dir).unwrap();
    let pkg = dir.join("p.zip");
    fs::write(&pkg, package).unwrap();
    Deploy::new(pkg.to_str().unwrap())
        .unwrap()
        .dest(dir.join("app"))
        .durable(false)
        .run()
        .unwrap();
    snapshot(&dir.join("app"))
}

/// Deploy, no-op redeploy, second version, status, rollback and back.
fn deploys_into_a_volume(volume: Volume) {
    let s = Setup::new(volume);
    let (server, v1, v2) = packages_server();
    let beside_before = names_in(s.tmp.path());
    // Whatever the volume already holds stays as it is.
    fs::write(s.dest.join("lost+found.txt"), b"not ours").unwrap();

    let layout = Layout::new(&s.dest).unwrap();
    assert_eq!(layout.dest(), s.tree());
    assert_eq!(layout.volume(), Some(s.dest.as_path()));
    assert_eq!(layout.state_dir(), s.dest.join(".current.zipdeploy"));

    let report = s.deploy(&server.url("/v1.zip"), &v1).unwrap();
    assert!(!report.noop);
    assert_eq!(report.dest, s.tree());
    let tree_v1 = reference(s.tmp.path(), "v1", &v1);
    assert_eq!(snapshot(&s.tree()), tree_v1);
    assert_eq!(
        names_in(&s.dest),
        [".current.zipdeploy", "current", "lost+found.txt"]
    );
    assert_eq!(
        fs::read(s.dest.join("lost+found.txt")).unwrap(),
        b"not ours"
    );
    // Nothing beside the volume: its parent is as it was (the references aside).
    let beside: Vec<_> = names_in(s.tmp.path())
        .into_iter()
        .filter(|n| !n.starts_with("reference-"))
        .collect();
    assert_eq!(beside, beside_before);

    // The same digest again: a no-op that fetches nothing.
    let fetched = server.requests().len();
    let again = s.deploy(&server.url("/v1.zip"), &v1).unwrap();
    assert!(again.noop);
    assert_eq!(again.dest, s.tree());
    assert_eq!(server.requests().len(), fetched);

    let report = s.deploy(&server.url("/v2.zip"), &v2).unwrap();
    assert!(!report.noop);
    let tree_v2 = reference(s.tmp.path(), "v2", &v2);
    assert_eq!(snapshot(&s.tree()), tree_v2);

    let status = zipdeploy::status(&s.dest).unwrap();
    assert_eq!(status.dest, s.tree());
    assert_eq!(status.current.unwrap().digest, Sha256Digest::of(&v2));
    assert_eq!(status.kept.len(), 1);
    assert_eq!(
        status.kept[0].installed.as_ref().unwrap().digest,
        Sha256Digest::of(&v1)
    );

    let back = zipdeploy::rollback(&s.dest).unwrap();
    assert_eq!(back.status.dest, s.tree());
    assert_eq!(back.previous.unwrap().digest, Sha256Digest::of(&v2));
    assert_eq!(snapshot(&s.tree()), tree_v1);
    let status = zipdeploy::status(&s.dest).unwrap();
    assert_eq!(status.current.unwrap().digest, Sha256Digest::of(&v1));
    // v1 is installed again: deploying it is a no-op.
    assert!(s.deploy(&server.url("/v1.zip"), &v1).unwrap().noop);
    zipdeploy::rollback(&s.dest).unwrap();
    assert_eq!(snapshot(&s.tree()), tree_v2);
}

#[test]
fn a_tmpfs_at_dest_gets_the_tree_one_level_down() {
    if in_mount_namespace("a_tmpfs_at_dest_gets_the_tree_one_level_down") {
        deploys_into_a_volume(Volume::Tmpfs);
    }
}

#[test]
fn a_bind_mount_at_dest_gets_the_tree_one_level_down() {
    if in_mount_namespace("a_bind_mount_at_dest_gets_the_tree_one_level_down") {
        deploys_into_a_volume(Volume::Bind);
    }
}

/// Failures at every stage — the download, the digest, the archive, the
/// init hook — leave the volume exactly as it was.
#[test]
fn a_failed_deploy_leaves_the_volume_as_it_was() {
    if !in_mount_namespace("a_failed_deploy_leaves_the_volume_as_it_was") {
        return;
    }
    let s = Setup::new(Volume::Tmpfs);
    let (server, v1, v2) = packages_server();
    s.deploy(&server.url("/v1.zip"), &v1).unwrap();
    fs::write(s.dest.join("data.txt"), b"kept").unwrap();
    let contents = |s: &Setup| {
        let mut all = snapshot(&s.dest);
        all.retain(|path, _| !path.starts_with(".current.zipdeploy"));
        all
    };
    let before = contents(&s);

    let failures: Vec<(&str, Result<Report, Error>)> = vec![
        ("HTTP 404", s.deploy(&server.url("/missing.zip"), &v2)),
        ("wrong digest", s.deploy(&server.url("/v2.zip"), b"other")),
        (
            "corrupt archive",
            s.deploy(&server.url("/corrupt.zip"), CORRUPT),
        ),
        (
            "failing hook",
            Deploy::new(&server.url("/v2.zip"))
                .unwrap()
                .dest(&s.dest)
                .durable(false)
                .before_activate(|_| Err("init failed".into()))
                .run(),
        ),
    ];
    for (what, result) in failures {
        assert!(result.is_err(), "{what}: {result:?}");
        assert_eq!(contents(&s), before, "{what}");
    }
    let state = s.dest.join(".current.zipdeploy");
    let work: Vec<_> = names_in(&state)
        .into_iter()
        .filter(|n| n.starts_with("staging-") || n.starts_with("download-"))
        .collect();
    assert!(work.is_empty(), "{work:?}");
    assert_eq!(
        zipdeploy::status(&s.dest).unwrap().current.unwrap().digest,
        Sha256Digest::of(&v1)
    );
}

/// A second mount at `DEST/current`, where the tree would go, could not be
/// swapped either: refused before any request, naming the layout that works.
#[test]
fn a_mount_where_the_tree_would_go_is_refused_before_download() {
    if !in_mount_namespace("a_mount_where_the_tree_would_go_is_refused_before_download") {
        return;
    }
    let s = Setup::new(Volume::Tmpfs);
    fs::create_dir(s.tree()).unwrap();
    let _inner = Mounted::tmpfs(&s.tree());
    let (server, v1, _) = packages_server();
    let err = s.deploy(&server.url("/v1.zip"), &v1).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("mount point")
            && text.contains(&format!("mount the volume at {}", s.dest.display())),
        "{text}"
    );
    assert!(server.requests().is_empty());
    assert_eq!(names_in(&s.dest), ["current"]);
}

/// A volume mounted *inside* DEST (`DEST/storage`, for uploads) moves with
/// the tree that holds it when a new tree is swapped in: the app would lose
/// it without a word, to a kept release that could never be removed. A
/// deploy and a rollback are refused, before any request, naming the mount;
/// DEST and the volume stay as they were.
#[test]
fn a_mount_inside_dest_is_refused_before_download() {
    if !in_mount_namespace("a_mount_inside_dest_is_refused_before_download") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("app");
    let (server, v1, v2) = packages_server();
    let deploy = |url: &str, package: &[u8]| {
        Deploy::new(url)
            .unwrap()
            .sha256(&Sha256Digest::of(package).to_hex())
            .unwrap()
            .dest(&dest)
            .durable(false)
            .run()
    };
    deploy(&server.url("/v1.zip"), &v1).unwrap();
    deploy(&server.url("/v2.zip"), &v2).unwrap();
    let uploads = tmp.path().join("uploads");
    fs::create_dir(&uploads).unwrap();
    fs::write(uploads.join("photo.jpg"), b"precious").unwrap();
    let storage = dest.join("storage");
    fs::create_dir(&storage).unwrap();
    let _volume = Mounted::bind(&uploads, &storage);
    let before = snapshot(&dest);
    let requests = server.requests().len();

    let err = deploy(&server.url("/v1.zip"), &v1).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} is a mount point", storage.display())),
        "{text}"
    );
    let err = zipdeploy::rollback(&dest).unwrap_err().to_string();
    assert!(err.contains("is a mount point"), "{err}");
    assert_eq!(server.requests().len(), requests);
    assert_eq!(snapshot(&dest), before);
    assert_eq!(read(storage.join("photo.jpg")), b"precious");
    assert_eq!(read(dest.join("VERSION")), b"2");
}

/// `/` has no name to swap a tree in beside, and is not taken for a volume
/// either: refused before any request.
#[test]
fn the_root_directory_is_refused_before_download() {
    let (server, v1, _) = packages_server();
    let err = Deploy::new(&server.url("/v1.zip"))
        .unwrap()
        .sha256(&Sha256Digest::of(&v1).to_hex())
        .unwrap()
        .dest("/")
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("destination /: needs a final directory name"),
        "{err}"
    );
    assert!(server.requests().is_empty());
    assert!(!Path::new("/current").exists());
    assert!(!Path::new("/.current.zipdeploy").exists());
}

/// The CLI installs into `DEST/current` and runs `--init` and COMMAND with
/// PACKAGE_DIR (and COMMAND's working directory) there; `--status` and
/// `--rollback` find it.
#[test]
fn the_cli_runs_the_app_in_the_tree_on_the_volume() {
    if !in_mount_namespace("the_cli_runs_the_app_in_the_tree_on_the_volume") {
        return;
    }
    let s = Setup::new(Volume::Tmpfs);
    let package = |version: &str| {
        let init = b"echo \"init in $(pwd) for $PACKAGE_DIR\" > init.log\n";
        let zip = zip_of(&[
            Entry::File("VERSION", version.as_bytes()),
            Entry::File("init.sh", init),
        ]);
        let path = s.tmp.path().join(format!("{version}.zip"));
        fs::write(&path, &zip).unwrap();
        path
    };
    let run = |args: &[&OsStr]| {
        let out = Command::new(cli_path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PACKAGE_DIR", &s.dest)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        stdout
    };
    let show = OsStr::new("pwd; echo \"$PACKAGE_DIR\"; cat VERSION; echo");
    let tree = s.tree().display().to_string();
    for version in ["1", "2"] {
        let pkg = package(version);
        let out = run(&[
            OsStr::new("--url"),
            pkg.as_os_str(),
            OsStr::new("--init"),
            OsStr::new("init.sh"),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            show,
        ]);
        assert_eq!(out, format!("{tree}\n{tree}\n{version}\n"));
        let log = fs::read_to_string(s.tree().join("init.log")).unwrap();
        assert!(log.ends_with(&format!(" for {tree}\n")), "{log}");
    }
    let status = run(&[OsStr::new("--status")]);
    assert!(status.contains(&tree), "{status}");
    let out = run(&[
        OsStr::new("--rollback"),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        show,
    ]);
    assert_eq!(out, format!("{tree}\n{tree}\n1\n"));
}
