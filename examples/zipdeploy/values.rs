//! Value syntax shared by the options: switches, sizes, durations, headers,
//! and the usage errors that name where a bad value came from.

use std::path::{Component, PathBuf};
use std::time::Duration;

use zipdeploy::Error;

use crate::given::Origin;

pub fn usage(message: String) -> Error {
    Error::Config(format!("{message}; see zipdeploy --help"))
}

pub fn invalid(origin: &Origin, why: &str) -> Error {
    usage(format!("invalid {origin}: {why}"))
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A byte count, optionally with a binary suffix: `512`, `64K`, `500M`, `4G`.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Seconds, fractions allowed; zero is refused as it could never succeed.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
}

pub fn parse_header(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    let is_token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return None;
    }
    Some((name.to_string(), value.trim().to_string()))
}

/// An `--init` path must name a file inside the package.
pub fn package_relative(origin: &Origin, path: PathBuf) -> Result<PathBuf, Error> {
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(path)
    } else {
        Err(invalid(
            origin,
            "must be a relative path inside the package",
        ))
    }
}
