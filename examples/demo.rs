//! Deploys the demo package shipped in `examples/` with the Rust API and
//! shows the result:
//!
//! ```sh
//! cargo run --example demo -- /tmp/zipdeploy-demo
//! ```
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dest = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("zipdeploy-demo"),
        PathBuf::from,
    );
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let package = examples.join("demo-app.zip");
    let package = package.to_str().ok_or("non-UTF-8 path")?;

    // The expected SHA-256 comes from the sidecar published beside the
    // package (`sha256sum` format), read and checked by the library.
    let report = zipdeploy::Deploy::new(package)?
        .sha256_from(&format!("{package}.sha256"))?
        .dest(&dest)
        .run()?;

    if report.noop {
        println!(
            "{} already installed in {}",
            report.digest,
            report.dest.display()
        );
    } else {
        println!(
            "installed {} into {}: {} files, {} dirs, {} bytes in {:?}",
            report.digest,
            report.dest.display(),
            report.files,
            report.dirs,
            report.bytes_written,
            report.timings.total
        );
    }
    list(&report.dest, &report.dest)?;
    Ok(())
}

fn list(root: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let meta = entry.metadata()?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(&entry.path())
            .to_path_buf();
        println!(
            "  {:o}  {:>6}  {}",
            meta.permissions().mode() & 0o7777,
            meta.len(),
            rel.display()
        );
        if meta.is_dir() {
            list(root, &entry.path())?;
        }
    }
    Ok(())
}
