//! Small companion files of a package: the SHA-256 sidecar (`app.zip.sha256`)
//! and the minisign signature (`app.zip.minisig`).
//!
//! They are fetched with the package's network options (retries, headers,
//! trusted roots, timeouts) through the same fetch stage, into the state
//! directory, and are size-limited to [`MAX_SIZE`].

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use crate::digest::Sha256Digest;
use crate::error::{Error, Limit, Result};
use crate::fetch::{self, FetchOptions, Source};
use crate::progress::{Progress, ProgressFn, Stage};

/// Largest sidecar or signature file accepted: 64 KiB.
pub const MAX_SIZE: u64 = 64 << 10;

/// Fetches a small file into memory, through `scratch` (a path in the state
/// directory, removed before returning). `progress` only sees heartbeats
/// (fetch events with no bytes), so that it can cancel a stalled fetch
/// without a meter mistaking this file for the package.
pub(crate) fn fetch_small(
    source: &Source,
    options: &FetchOptions,
    scratch: &Path,
    mut progress: Option<&mut ProgressFn<'_>>,
) -> Result<Vec<u8>> {
    let options = FetchOptions {
        max_size: MAX_SIZE,
        ..options.clone()
    };
    let mut heartbeat = |_: &Progress| match progress.as_deref_mut() {
        Some(f) => f(&Progress::bytes(Stage::Fetch, 0, None)),
        None => ControlFlow::Continue(()),
    };
    let result = match source {
        Source::File(path) => read_local(path),
        Source::Http(_) | Source::S3(_) => {
            fetch::fetch_to_file(source, scratch, &options, Some(&mut heartbeat))
                .and_then(|_| std::fs::read(scratch).map_err(Error::io("read", scratch)))
        }
    };
    let _ = std::fs::remove_file(scratch);
    let bytes = result?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(Error::LimitExceeded {
            limit: Limit::DownloadSize,
            max: MAX_SIZE,
            actual: bytes.len() as u64,
            entry: None,
        });
    }
    Ok(bytes)
}

/// The local file at `path`, read through the one handle its checks were
/// made on (a regular file; opening never blocks on a FIFO), and at most one
/// byte over [`MAX_SIZE`]: it may sit beside the package in a directory
/// others write, who could rename a FIFO or a link to `/dev/zero` over it.
fn read_local(path: &Path) -> Result<Vec<u8>> {
    let (file, _) = fetch::open_local(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read", path))?;
    Ok(bytes)
}

/// The location of `package` with `suffix` appended to its path
/// (`https://h/app.zip?x=1` → `https://h/app.zip.minisig?x=1`).
pub(crate) fn beside(package: &Source, suffix: &str) -> Source {
    match package {
        Source::Http(url) => {
            let mut url = url.clone();
            let path = format!("{}{suffix}", url.path());
            url.set_path(&path);
            Source::Http(url)
        }
        Source::File(path) => {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            Source::File(name.into())
        }
        Source::S3(location) => Source::S3(location.with_suffix(suffix)),
    }
}

/// The last path segment of a package location (`app.zip`), decoded.
pub(crate) fn file_name(package: &Source) -> String {
    match package {
        Source::Http(url) => {
            let last = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default();
            percent_decode(last).unwrap_or_else(|| last.to_string())
        }
        Source::File(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Source::S3(location) => location.key().rsplit('/').next().unwrap_or_default().into(),
    }
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the digest for `package_name` from a sidecar in one of the common
/// formats: `HEX  name` (sha256sum), `HEX *name` (binary mode), a bare
/// `HEX`, or `SHA256 (name) = HEX` (BSD). Blank lines and `#` comments are
/// ignored. One digest line is used whatever name it gives; among several,
/// the lines naming `package_name` (its last path segment) must exist and
/// agree.
///
/// ```
/// # use zipdeploy::sidecar::parse;
/// let hex = "23745f9b51092e434341d0bf1cd9e987a7723f27a363c38386f42e70a017f8d0";
/// let text = format!("{hex}  app.zip\n{}  other.zip\n", "0".repeat(64));
/// assert_eq!(parse(&text, "app.zip").unwrap().to_hex(), hex);
/// ```
pub fn parse(text: &str, package_name: &str) -> std::result::Result<Sha256Digest, String> {
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (hex, name) = split_line(line)
            .ok_or_else(|| format!("line {} is not `HEX  FILENAME`", number + 1))?;
        let digest: Sha256Digest = hex
            .parse()
            .map_err(|e: Error| format!("line {}: {e}", number + 1))?;
        lines.push((digest, name));
    }
    match &lines[..] {
        [] => Err("no digest in it".into()),
        [(digest, _)] => Ok(*digest),
        _ => {
            let wanted = |name: &Option<&str>| {
                name.is_some_and(|n| {
                    let n = n.trim_start_matches("./");
                    n == package_name || n.rsplit('/').next() == Some(package_name)
                })
            };
            let matching: Vec<Sha256Digest> = lines
                .iter()
                .filter(|(_, name)| wanted(name))
                .map(|(d, _)| *d)
                .collect();
            match &matching[..] {
                [] => Err(format!(
                    "{} digest lines and none for {package_name:?}",
                    lines.len()
                )),
                [first, rest @ ..] if rest.iter().all(|d| d == first) => Ok(*first),
                _ => Err(format!("ambiguous: different digests for {package_name:?}")),
            }
        }
    }
}

/// `(hex, name)` of one sidecar line.
fn split_line(line: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest.rsplit_once(") = ")?;
        return Some((hex.trim(), Some(name)));
    }
    match line.split_once(char::is_whitespace) {
        None => Some((line, None)),
        Some((hex, name)) => {
            let name = name.trim_start();
            let name = name.strip_prefix('*').unwrap_or(name);
            Some((hex, (!name.is_empty()).then_some(name)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn reads_the_common_formats() {
        let a = hex('a');
        for text in [
            format!("{a}\n"),
            format!("{a}  app.zip\n"),
            format!("{a} *app.zip\n"),
            format!("# made by CI\n\n{a}  dist/app.zip\r\n"),
            format!("SHA256 (app.zip) = {a}\n"),
            format!("{a}  app-1.2.zip\n"),
        ] {
            assert_eq!(parse(&text, "app.zip").unwrap().to_hex(), a, "{text:?}");
        }
    }

    #[test]
    fn picks_the_line_of_the_package_and_refuses_ambiguity() {
        let (a, b) = (hex('a'), hex('b'));
        let two = format!("{b}  other.zip\n{a}  app.zip\n");
        assert_eq!(parse(&two, "app.zip").unwrap().to_hex(), a);
        assert_eq!(parse(&two, "other.zip").unwrap().to_hex(), b);
        let err = parse(&two, "third.zip").unwrap_err();
        assert!(err.contains("none for \"third.zip\""), "{err}");
        let clash = format!("{a}  app.zip\n{b}  ./app.zip\n");
        assert!(parse(&clash, "app.zip").unwrap_err().contains("ambiguous"));
        let same = format!("{a}  app.zip\n{a} *app.zip\n{b}  x.zip\n");
        assert_eq!(parse(&same, "app.zip").unwrap().to_hex(), a);
        assert!(parse("", "app.zip").is_err());
        assert!(parse("not-a-digest  app.zip", "app.zip").is_err());
        assert!(parse("<html>404</html>", "app.zip").is_err());
    }

    #[test]
    fn names_and_neighbours_of_locations() {
        let s = Source::parse("https://h.example/d/my%20app.zip?sig=1").unwrap();
        assert_eq!(file_name(&s), "my app.zip");
        assert_eq!(
            beside(&s, ".sha256"),
            Source::parse("https://h.example/d/my%20app.zip.sha256?sig=1").unwrap()
        );
        let o = Source::parse("s3://releases/app/v 1.zip").unwrap();
        assert_eq!(file_name(&o), "v 1.zip");
        assert_eq!(
            beside(&o, ".minisig"),
            Source::parse("s3://releases/app/v 1.zip.minisig").unwrap()
        );
        let f = Source::parse("/srv/app.zip").unwrap();
        assert_eq!(file_name(&f), "app.zip");
        assert_eq!(
            beside(&f, ".minisig"),
            Source::parse("/srv/app.zip.minisig").unwrap()
        );
    }
}
