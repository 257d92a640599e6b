//! Options: one table drives flag parsing, environment fallbacks and --help
//! (defaults shown from the library's `DeployOptions::default()`).

use zipdeploy::DeployOptions;

use crate::values::{human_duration, human_size};

/// One command-line option.
pub struct Opt {
    /// Long name without the dashes, e.g. `max-size`.
    pub name: &'static str,
    /// Placeholder of the value in the help, `None` for a switch.
    pub value: Option<&'static str>,
    /// Where its environment fallback comes from.
    pub env: EnvVar,
    /// May be given more than once.
    pub repeatable: bool,
    /// The one-letter form, e.g. `v` for `-v`.
    pub short: Option<char>,
    pub help: &'static str,
    /// The library's default, as `--help` shows it.
    pub default: Option<fn(&DeployOptions) -> String>,
}

/// The environment variable read when an option is not on the command line.
#[derive(Clone, Copy)]
pub enum EnvVar {
    /// A name shared with the shell scripts this replaces (`PACKAGE_*`).
    Named(&'static str),
    /// `ZIPDEPLOY_` + the option name upper-cased, dashes as underscores.
    Derived,
    /// The `_FILE` form of the named option's variable: `--url-file` is
    /// `PACKAGE_ZIP_URL_FILE`. Every option with a variable has that form.
    FileOf(&'static str),
    /// No fallback (`--help`, `--version`).
    None,
}

pub const OPTIONS: &[Opt] = &[
    Opt {
        repeatable: true,
        ..Opt::value(
            "url",
            "URL",
            EnvVar::Named("PACKAGE_ZIP_URL"),
            "package: http(s)://..., s3://BUCKET/KEY, file://... or a path; repeat for mirrors",
        )
    },
    Opt::value(
        "url-file",
        "FILE",
        EnvVar::FileOf("url"),
        "read --url value(s) from FILE, e.g. a mounted secret",
    ),
    Opt::value(
        "sha256",
        "HEX",
        EnvVar::Named("PACKAGE_SHA256"),
        "expected SHA-256 of the package (hex or sha256:hex)",
    ),
    Opt::value(
        "sha256-from",
        "URL",
        EnvVar::Derived,
        "read the expected SHA-256 from this sidecar (e.g. app.zip.sha256)",
    ),
    Opt::value(
        "minisign-key",
        "KEY",
        EnvVar::Derived,
        "require a minisign signature by this public key (base64, or a .pub file)",
    ),
    Opt::value(
        "minisign-sig",
        "URL",
        EnvVar::Derived,
        "where the signature is (URL or path); default: package URL + .minisig",
    ),
    Opt::value(
        "dest",
        "DIR",
        EnvVar::Named("PACKAGE_DIR"),
        "directory to install into (state in ../.NAME.zipdeploy/; a mount point: into DIR/current)",
    ),
    Opt::value(
        "init",
        "SCRIPT",
        EnvVar::Derived,
        "run `sh SCRIPT` (from the package) in the staged tree first",
    ),
    Opt::switch(
        "pass-env",
        EnvVar::Derived,
        "let --init and COMMAND see zipdeploy's own variables (default: removed)",
    ),
    Opt {
        repeatable: true,
        ..Opt::value(
            "header",
            "'NAME: VALUE'",
            EnvVar::Derived,
            "extra request header; repeatable (variable: one per line)",
        )
    },
    Opt::value(
        "header-file",
        "FILE",
        EnvVar::FileOf("header"),
        "read headers from FILE, one 'Name: value' a line, # comments",
    ),
    Opt::value(
        "cacert",
        "FILE",
        EnvVar::Derived,
        "also trust the CA certificate(s) in this PEM file for https",
    ),
    Opt::value(
        "netrc-file",
        "FILE",
        EnvVar::Derived,
        "http(s) credentials from this netrc file (default: NETRC, else ~/.netrc)",
    ),
    Opt::switch("no-netrc", EnvVar::Derived, "read no netrc file"),
    Opt::value(
        "s3-endpoint",
        "URL",
        EnvVar::Derived,
        "S3-compatible endpoint for s3:// (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS)",
    ),
    Opt::switch(
        "s3-path-style",
        EnvVar::Derived,
        "address s3:// objects as ENDPOINT/BUCKET/KEY on AWS too",
    ),
    Opt {
        default: Some(|_| "none".into()),
        ..Opt::value(
            "timeout",
            "TIME",
            EnvVar::Derived,
            "deadline for the whole download, retries included",
        )
    },
    Opt {
        default: Some(|d| human_duration(d.fetch.connect_timeout)),
        ..Opt::value(
            "connect-timeout",
            "TIME",
            EnvVar::Derived,
            "time allowed to connect (TCP and TLS), per attempt",
        )
    },
    Opt {
        default: Some(|d| human_duration(d.fetch.stall_timeout)),
        ..Opt::value(
            "stall-timeout",
            "TIME",
            EnvVar::Derived,
            "longest wait for the response or any byte of it, per attempt",
        )
    },
    Opt {
        default: Some(|d| d.fetch.retries.to_string()),
        ..Opt::value(
            "retries",
            "N",
            EnvVar::Derived,
            "retries on transient network errors",
        )
    },
    Opt {
        default: Some(|d| d.fetch.connections.to_string()),
        ..Opt::value(
            "connections",
            "N",
            EnvVar::Derived,
            "most connections a download uses: the rest of a slow download is fetched in ranges over up to N; 1: one",
        )
    },
    Opt {
        default: Some(|d| human_size(d.fetch.speed_limit)),
        ..Opt::value(
            "speed-limit",
            "BYTES",
            EnvVar::Derived,
            "fail (and retry) a download slower than BYTES/s over --speed-time; 0: off",
        )
    },
    Opt {
        default: Some(|d| human_duration(d.fetch.speed_time)),
        ..Opt::value(
            "speed-time",
            "TIME",
            EnvVar::Derived,
            "the window --speed-limit averages over",
        )
    },
    Opt {
        default: Some(|d| human_size(d.fetch.max_size)),
        ..Opt::value(
            "max-size",
            "BYTES",
            EnvVar::Derived,
            "largest package accepted",
        )
    },
    Opt {
        default: Some(|d| human_size(d.limits.max_total_size)),
        ..Opt::value(
            "max-total-size",
            "BYTES",
            EnvVar::Derived,
            "largest total uncompressed size",
        )
    },
    Opt {
        default: Some(|d| d.limits.max_entries.to_string()),
        ..Opt::value(
            "max-entries",
            "N",
            EnvVar::Derived,
            "most entries in the archive",
        )
    },
    Opt {
        default: Some(|d| d.keep.to_string()),
        ..Opt::value(
            "keep",
            "N",
            EnvVar::Derived,
            "previous releases kept for rollback",
        )
    },
    Opt::value(
        "cache",
        "DIR",
        EnvVar::Derived,
        "download cache shared by deploys (DIR/sha256/HEX.zip)",
    ),
    Opt {
        default: Some(|d| human_size(d.cache_max_size)),
        ..Opt::value(
            "cache-max-size",
            "BYTES",
            EnvVar::Derived,
            "largest total size of the cache (least recently used evicted)",
        )
    },
    Opt::switch(
        "rollback",
        EnvVar::None,
        "swap the previous kept release back into DEST (no download)",
    ),
    Opt::switch(
        "status",
        EnvVar::None,
        "show what is installed in DEST and the kept releases",
    ),
    Opt::switch(
        "sync",
        EnvVar::Derived,
        "sync the tree to disk before activation or rollback (survives a power cut; slower)",
    ),
    Opt::switch(
        "progress",
        EnvVar::Derived,
        "show progress on stderr even when it is not a terminal",
    ),
    Opt {
        short: Some('q'),
        ..Opt::switch(
            "quiet",
            EnvVar::Derived,
            "only errors on stderr: no progress, summary or notes",
        )
    },
    Opt {
        short: Some('v'),
        ..Opt::switch(
            "verbose",
            EnvVar::Derived,
            "one line on stderr per retry, redirect and fallback",
        )
    },
    Opt::switch(
        "json",
        EnvVar::Derived,
        "print a one-line JSON report (or error) on stdout",
    ),
    Opt {
        short: Some('V'),
        ..Opt::switch("version", EnvVar::None, "print the version and exit")
    },
    Opt {
        short: Some('h'),
        ..Opt::switch("help", EnvVar::None, "print this help and exit")
    },
];

impl Opt {
    pub const fn value(
        name: &'static str,
        value: &'static str,
        env: EnvVar,
        help: &'static str,
    ) -> Opt {
        Opt {
            name,
            value: Some(value),
            env,
            repeatable: false,
            short: None,
            help,
            default: None,
        }
    }

    pub const fn switch(name: &'static str, env: EnvVar, help: &'static str) -> Opt {
        Opt {
            name,
            value: None,
            env,
            repeatable: false,
            short: None,
            help,
            default: None,
        }
    }

    pub fn named(name: &str) -> Option<&'static Opt> {
        OPTIONS.iter().find(|opt| opt.name == name)
    }

    pub fn by_short(letter: char) -> Option<&'static Opt> {
        OPTIONS.iter().find(|opt| opt.short == Some(letter))
    }

    /// The option a misspelt `name` most likely meant: one or two typing
    /// errors away (one for short names), like git's "did you mean".
    pub fn closest(name: &str) -> Option<&'static Opt> {
        let allowed = if name.len() <= 4 { 1 } else { 2 };
        OPTIONS
            .iter()
            .map(|opt| (edit_distance(name, opt.name), opt))
            .filter(|(distance, _)| *distance <= allowed)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, opt)| opt)
    }

    pub fn env_var(&self) -> Option<String> {
        match self.env {
            EnvVar::Named(name) => Some(name.to_string()),
            EnvVar::Derived => Some(format!(
                "ZIPDEPLOY_{}",
                self.name.to_ascii_uppercase().replace('-', "_")
            )),
            EnvVar::FileOf(option) => Opt::named(option)
                .and_then(Opt::env_var)
                .map(|var| var + "_FILE"),
            EnvVar::None => None,
        }
    }

    /// The option whose value(s) this one reads from a file.
    pub fn file_form_of(&self) -> Option<&'static Opt> {
        match self.env {
            EnvVar::FileOf(option) => Opt::named(option),
            _ => None,
        }
    }
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`:
/// the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("dest", "dest"), 0);
        assert_eq!(edit_distance("dset", "dest"), 1);
        assert_eq!(edit_distance("sha265", "sha256"), 1);
        assert_eq!(edit_distance("retry", "retries"), 3);
        assert_eq!(edit_distance("", "url"), 3);
    }

    #[test]
    fn misspelt_options_find_their_name() {
        let closest = |name| Opt::closest(name).map(|opt| opt.name);
        assert_eq!(closest("dset"), Some("dest"));
        assert_eq!(closest("timout"), Some("timeout"));
        assert_eq!(closest("sha265"), Some("sha256"));
        assert_eq!(closest("verbos"), Some("verbose"));
        assert_eq!(closest("frobnicate"), None);
    }

    #[test]
    fn help_defaults_are_read_from_the_library_options() {
        let mut options = DeployOptions::default();
        options.keep = 7;
        options.fetch.stall_timeout = std::time::Duration::from_millis(1500);
        let shown = |name| (Opt::named(name).unwrap().default.unwrap())(&options);
        assert_eq!(shown("keep"), "7");
        assert_eq!(shown("stall-timeout"), "1500ms");
    }

    #[test]
    fn short_forms_are_unique() {
        for opt in OPTIONS.iter().filter(|opt| opt.short.is_some()) {
            assert_eq!(Opt::by_short(opt.short.unwrap()).unwrap().name, opt.name);
        }
    }
}
