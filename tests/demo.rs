//! The README's first command, `cargo run --example demo -- DEST`: the demo
//! deploys the package shipped in `examples/` with the digest from its
//! sidecar (`Deploy::sha256_from`), and a second run is a no-op.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_demo_installs_the_shipped_package_then_is_a_no_op() {
    let demo = cli_path().with_file_name("demo");
    assert!(
        demo.is_file(),
        "{} is missing (run `cargo build --example demo` first)",
        demo.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("demo");
    let sidecar =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-app.zip.sha256");
    let digest = std::fs::read_to_string(sidecar).unwrap();
    let digest = digest.split_whitespace().next().unwrap();

    let first = Command::new(&demo).arg(&dest).output().unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{first:?}");
    assert!(
        stdout.starts_with(&format!("installed {digest} into ")),
        "{stdout}"
    );
    assert!(dest.join("init.sh").is_file(), "{stdout}");

    let second = Command::new(&demo).arg(&dest).output().unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout.starts_with(&format!("{digest} already installed")),
        "{stdout}"
    );
}
