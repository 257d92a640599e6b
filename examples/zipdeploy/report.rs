//! Reporting: summary line, status and JSON on success.

use std::time::Duration;

use zipdeploy::{Installed, Report, Status};

use crate::config::Cli;
use crate::failure::Failure;
use crate::json::{escape_json, JsonObject};

/// Tells the caller what happened: JSON on stdout, or a summary on stderr.
pub fn announce(cli: &Cli, report: &Report) {
    for warning in &report.warnings {
        eprintln!("zipdeploy: warning: {warning}");
    }
    if cli.json {
        println!("{}", report_json(report));
    } else if !cli.quiet {
        eprintln!("zipdeploy: {}", summary(report));
    }
}

/// `--status`: what is installed, on stdout. Exit 0 when something is,
/// 1 when nothing is.
pub fn show_status(cli: &Cli) -> Result<u8, Failure> {
    let status = zipdeploy::status(&cli.dest)?;
    if cli.json {
        println!("{}", status_json(&status));
    } else {
        print!("{}", status_text(&status));
    }
    Ok(if status.current.is_some() { 0 } else { 1 })
}

pub fn status_text(status: &Status) -> String {
    let mut text = format!("dest:          {}\n", status.dest.display());
    match &status.current {
        Some(c) => {
            text.push_str(&format!("installed:     {}\n", c.digest));
            text.push_str(&format!("source:        {}\n", c.source));
            text.push_str(&format!(
                "installed at:  {}\n",
                zipdeploy::status::rfc3339(c.installed_at)
            ));
            text.push_str(&format!("package size:  {} bytes\n", c.package_size));
            if let Some(key) = &c.signed_by {
                text.push_str(&format!("signed by:     minisign key {key}\n"));
            }
        }
        None if status.dest.exists() => {
            text.push_str(
                "installed:     nothing (the tree in dest was not installed by zipdeploy)\n",
            );
        }
        None => text.push_str("installed:     nothing\n"),
    }
    text.push_str(&format!(
        "kept:          {} release(s) for rollback{}\n",
        status.kept.len(),
        if status.kept.is_empty() {
            ""
        } else {
            " (oldest first; --rollback restores the last)"
        }
    ));
    for (i, release) in status.kept.iter().enumerate() {
        let line = match &release.installed {
            Some(r) => format!(
                "{} installed {} from {}",
                r.digest,
                zipdeploy::status::rfc3339(r.installed_at),
                r.source
            ),
            None => "a tree not installed by zipdeploy".into(),
        };
        text.push_str(&format!("  {}. {line}\n", i + 1));
    }
    text
}

pub fn record_json(record: &Installed) -> JsonObject {
    let json = JsonObject::new()
        .string("digest", &record.digest.to_hex())
        .string("source", &record.source)
        .number("installed_at", record.installed_at)
        .string(
            "installed_at_utc",
            &zipdeploy::status::rfc3339(record.installed_at),
        )
        .number("package_size", record.package_size);
    match &record.signed_by {
        Some(key) => json.string("signed_by", key),
        None => json.raw("signed_by", "null"),
    }
}

pub fn status_json(status: &Status) -> String {
    let kept: Vec<String> = status
        .kept
        .iter()
        .map(|r| match &r.installed {
            Some(record) => record_json(record).string("id", &r.id).finish(),
            None => JsonObject::new()
                .string("id", &r.id)
                .raw("digest", "null")
                .finish(),
        })
        .collect();
    let json = JsonObject::new()
        .string("dest", &status.dest.to_string_lossy())
        .boolean("installed", status.current.is_some());
    let json = match &status.current {
        Some(c) => json.object("current", record_json(c)),
        None => json.raw("current", "null"),
    };
    json.raw("kept", &format!("[{}]", kept.join(","))).finish()
}

/// Tells the caller what a rollback did.
pub fn announce_rollback(cli: &Cli, rollback: &zipdeploy::Rollback) {
    let digest = |r: &Option<Installed>| r.as_ref().map(|r| r.digest.to_hex());
    let now = digest(&rollback.status.current);
    let before = digest(&rollback.previous);
    if cli.json {
        let json = JsonObject::new()
            .boolean("rolled_back", true)
            .string("dest", &rollback.status.dest.to_string_lossy());
        let json = match &now {
            Some(d) => json.string("digest", d),
            None => json.raw("digest", "null"),
        };
        let json = match &before {
            Some(d) => json.string("previous", d),
            None => json.raw("previous", "null"),
        };
        println!("{}", json.finish());
    } else if !cli.quiet {
        let name = |d: Option<String>| d.unwrap_or_else(|| "a tree without record".into());
        eprintln!(
            "zipdeploy: rolled back {} to {} (was {})",
            rollback.status.dest.display(),
            name(now),
            name(before)
        );
    }
}

pub fn summary(report: &Report) -> String {
    let dest = report.dest.display();
    if report.not_modified {
        return format!(
            "{} already installed in {dest} (not modified on the server)",
            report.digest
        );
    }
    if report.noop {
        return format!("{} already installed in {dest}", report.digest);
    }
    let mut notes = String::new();
    if report.cache_hit {
        notes.push_str(", from the cache");
    }
    if let Some(key) = &report.signed_by {
        notes.push_str(&format!(", signed by {key}"));
    }
    if !report.mirrors_skipped.is_empty() {
        notes.push_str(&format!(", from {}", report.source));
    }
    format!(
        "installed {} into {dest} ({} files, {} bytes{notes}) in {} ms",
        report.digest,
        report.files,
        report.bytes_written,
        report.timings.total.as_millis()
    )
}

pub fn report_json(report: &Report) -> String {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let timings = JsonObject::new()
        .number("fetch", ms(report.timings.fetch))
        .number("extract", ms(report.timings.extract))
        .number("install", ms(report.timings.install))
        .number("total", ms(report.timings.total));
    let json = JsonObject::new()
        .string("digest", &report.digest.to_hex())
        .string("source", &report.source)
        .string("dest", &report.dest.to_string_lossy())
        .boolean("noop", report.noop)
        .boolean("not_modified", report.not_modified)
        .number("bytes_downloaded", report.bytes_downloaded)
        .number("package_size", report.package_size)
        .number("entries", report.entries)
        .number("files", report.files)
        .number("dirs", report.dirs)
        .number("symlinks", report.symlinks)
        .number("bytes_written", report.bytes_written)
        .boolean("streamed", report.streamed)
        .boolean("cache_hit", report.cache_hit);
    let json = match &report.signed_by {
        Some(key) => json.string("signed_by", key),
        None => json.raw("signed_by", "null"),
    };
    let json = match &report.stream_fallback {
        Some(why) => json.string("stream_fallback", why),
        None => json,
    };
    let json = json.raw("mirrors_skipped", &json_strings(&report.mirrors_skipped));
    let json = json.raw("warnings", &json_strings(&report.warnings));
    json.object("timings_ms", timings).finish()
}

/// A JSON array of strings.
fn json_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| {
            let mut s = String::new();
            escape_json(item, &mut s);
            s
        })
        .collect();
    format!("[{}]", quoted.join(","))
}
