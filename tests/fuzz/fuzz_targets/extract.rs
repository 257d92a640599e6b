//! Arbitrary bytes as an archive: extraction never panics, never hangs, and
//! never writes outside the directory it was given.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zipdeploy::extract::{extract_archive, Limits};

/// A private scratch directory for this process.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zipdeploy-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let root = scratch();
    let archive = root.join("input.zip");
    let dest = root.join("out");
    std::fs::write(&archive, data).unwrap();
    let limits = Limits {
        max_total_size: 64 << 20,
        max_entries: 10_000,
        ..Limits::default()
    };
    let _ = extract_archive(&archive, &dest, &limits, None);
    // Nothing but the input and the destination may exist in the scratch dir.
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(name == "input.zip" || name == "out", "wrote outside: {name:?}");
    }
    if dest.exists() {
        let _ = std::process::Command::new("chmod").args(["-R", "u+rwx"]).arg(&dest).status();
        std::fs::remove_dir_all(&dest).unwrap();
    }
});
