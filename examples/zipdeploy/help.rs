//! The --help text.

use zipdeploy::{ErrorClass, FetchOptions, Limits};

use crate::options::{Opt, OPTIONS};
use crate::values::human_duration;

/// Exit statuses, by the library's error classes where they apply.
const EXIT_CODES: &[(u8, &str)] = &[
    (0, "success (with COMMAND, zipdeploy is replaced by it)"),
    (1, "--status: nothing installed in DEST"),
    (
        ErrorClass::Usage as u8,
        "usage: bad option, variable, URL or digest",
    ),
    (
        ErrorClass::Network as u8,
        "network: HTTP status, connection failure, timeout, every mirror failed",
    ),
    (
        ErrorClass::Digest as u8,
        "digest: SHA-256 mismatch, bad or missing signature, unusable sidecar",
    ),
    (
        ErrorClass::Archive as u8,
        "archive: not a ZIP, corrupt, ambiguous or unsafe entries",
    ),
    (
        ErrorClass::Limit as u8,
        "limit: --max-size, --max-total-size, --max-entries, ratio, path depth or length, metadata",
    ),
    (
        ErrorClass::Filesystem as u8,
        "filesystem: permissions, not a directory, full disk, nothing to roll back to",
    ),
    (
        ErrorClass::Hook as u8,
        "init script (--init) failed or is missing",
    ),
    (ErrorClass::Cancelled as u8, "cancelled"),
    (
        128 + 15,
        "stopped by SIGTERM (129 SIGHUP, 130 SIGINT): deploy cancelled, DEST unchanged",
    ),
    (126, "COMMAND could not be executed"),
    (127, "COMMAND not found"),
];

pub fn default_shown(opt: &Opt) -> Option<String> {
    let fetch = FetchOptions::default();
    let limits = Limits::default();
    Some(match opt.name {
        "timeout" => "none".into(),
        "retries" => fetch.retries.to_string(),
        "connections" => fetch.connections.to_string(),
        "speed-limit" => human_size(fetch.speed_limit),
        "speed-time" => human_duration(fetch.speed_time),
        "connect-timeout" => human_duration(fetch.connect_timeout),
        "stall-timeout" => human_duration(fetch.stall_timeout),
        "max-size" => human_size(fetch.max_size),
        "max-total-size" => human_size(limits.max_total_size),
        "max-entries" => limits.max_entries.to_string(),
        "keep" => "1".into(),
        "cache-max-size" => human_size(zipdeploy::cache::DEFAULT_MAX_SIZE),
        _ => return None,
    })
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

pub fn help_text() -> String {
    let mut text = String::from(
        "zipdeploy: install a ZIP package into a directory, then run a command in it\n\n\
         Usage: zipdeploy --url URL [--sha256 HEX] --dest DIR [options] [-- COMMAND ARGS...]\n\
         \x20      zipdeploy --dest DIR -- COMMAND ARGS...   (no URL: run in DIR as it is)\n\
         \x20      zipdeploy --rollback --dest DIR [-- COMMAND ARGS...]\n\
         \x20      zipdeploy --status --dest DIR [--json]\n\n\
         Downloads the package, checks its SHA-256, extracts it with every entry checked,\n\
         runs --init in the staged tree (its stdout goes to stderr) and swaps the tree into\n\
         DIR atomically; on any failure DIR is left as it was. A digest already installed\n\
         is not fetched again; without --sha256, nor is a package the server says did not\n\
         change (ETag, Last-Modified). A download cut short is resumed by the next run.\n\
         COMMAND then replaces zipdeploy (exec) in DIR.\n\
         When DIR is a mount point (a volume), which cannot be swapped, the tree goes\n\
         one level down into DIR/current (state in DIR/.current.zipdeploy/), and\n\
         COMMAND, PACKAGE_DIR, --status and --rollback use DIR/current.\n\n\
         Options (a flag beats its environment variable; --opt=value also works):\n",
    );
    for opt in OPTIONS {
        let short = match opt.short {
            Some(letter) => format!("-{letter}, "),
            None => "    ".into(),
        };
        let flag = match opt.value {
            Some(value) => format!("{short}--{} {value}", opt.name),
            None => format!("{short}--{}", opt.name),
        };
        text.push_str(&format!("  {flag:<28}{}\n", opt.help));
        let mut notes = Vec::new();
        if let Some(var) = opt.env_var() {
            notes.push(format!("env {var}"));
        }
        if let Some(default) = default_shown(opt) {
            notes.push(format!("default {default}"));
        }
        if !notes.is_empty() {
            text.push_str(&format!("  {:<28}[{}]\n", "", notes.join(", ")));
        }
    }
    text.push_str(
        "\nSizes take a K, M, G or T suffix (powers of 1024). Times are seconds (30, 2.5) or\n\
         take units: 500ms, 30s, 5m, 1h, 1m30s. Switches read 1/0, true/false,\n\
         yes/no or on/off from their variables. Empty variables count as unset; other\n\
         ZIPDEPLOY_* variables are refused. PACKAGE_ZIP_URL may hold several URLs (the URL\n\
         and its mirrors, tried in order) separated by whitespace.\n\n\
         Secrets: every variable VAR may instead be given as VAR_FILE=PATH (a Docker or\n\
         Kubernetes secret): the value is read from PATH, trailing line breaks dropped;\n\
         URL and header files skip blank and # lines. VAR and VAR_FILE together are an\n\
         error; errors name the file, never its content. --init and COMMAND do not see\n\
         zipdeploy's variables (PACKAGE_ZIP_URL, PACKAGE_SHA256, PACKAGE_DIR, ZIPDEPLOY_*\n\
         and their _FILE forms) unless --pass-env; PACKAGE_DIR is set for them to the\n\
         tree's absolute path (DEST, or DEST/current on a volume).\n\n\
         Output: errors, the summary and --verbose notes go to stderr, one line each;\n\
         stdout is left to --json and --status. Progress is shown on a terminal (or with\n\
         --progress): redrawn in place there, elsewhere (docker logs, a file) as plain\n\
         lines at each stage and every 5 s or 10%. --quiet leaves only errors.\n\n\
         Exit status:\n",
    );
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("  {code:<5}{meaning}\n"));
    }
    text
}
