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

/// A limit: a count or a size (`parse_size`) above 0. A limit of 0 could
/// only fail the deploy, after the download, as a limit (exit 6) rather than
/// the usage error it is; the C ABI refuses it too.
pub fn parse_limit(text: &str) -> Option<u64> {
    parse_size(text).filter(|&n| n > 0)
}

/// What `parse_duration` accepts, for error messages and --help.
pub const DURATION_FORMS: &str = "seconds, or with units: 500ms, 30s, 5m, 1h, 1m30s";

/// A duration: bare seconds (`30`, `2.5`), or numbers with units `ms`, `s`,
/// `m`, `h` in a row (`500ms`, `5m`, `1h30m`, `1.5s`). Zero is refused as
/// it could never succeed.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let total = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok()?,
        Err(_) => {
            let mut total = Duration::ZERO;
            let mut rest = text;
            while !rest.is_empty() {
                let digits = rest
                    .find(|c: char| !c.is_ascii_digit() && c != '.')
                    .filter(|&end| end > 0)?;
                let (number, tail) = rest.split_at(digits);
                let unit_len = tail
                    .find(|c: char| c.is_ascii_digit())
                    .unwrap_or(tail.len());
                let (unit, tail) = tail.split_at(unit_len);
                let secs_per_unit = match unit {
                    "ms" => 0.001,
                    "s" => 1.0,
                    "m" => 60.0,
                    "h" => 3600.0,
                    _ => return None,
                };
                let part = number.parse::<f64>().ok()? * secs_per_unit;
                total = total.checked_add(Duration::try_from_secs_f64(part).ok()?)?;
                rest = tail;
            }
            total
        }
    };
    (!total.is_zero()).then_some(total)
}

/// A size in the suffix notation `parse_size` accepts.
pub fn human_size(bytes: u64) -> String {
    let suffixes = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, suffix) in suffixes {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A duration as `parse_duration` reads it back: `30s`, `1m30s`, `500ms`.
pub fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30"), Some(ms(30_000)));
        assert_eq!(parse_duration("2.5"), Some(ms(2_500)));
        assert_eq!(parse_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_duration("30s"), Some(ms(30_000)));
        assert_eq!(parse_duration("5m"), Some(ms(300_000)));
        assert_eq!(parse_duration("1h"), Some(ms(3_600_000)));
        assert_eq!(parse_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_duration("1.5s"), Some(ms(1_500)));
        for bad in [
            "", "0", "0s", "5x", "s", "5 s", "-1", "1m-5s", "m5", "5sec", "1d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_read_back() {
        for text in ["30s", "1m30s", "5m", "500ms", "1500ms"] {
            assert_eq!(human_duration(parse_duration(text).unwrap()), text);
        }
    }
}
