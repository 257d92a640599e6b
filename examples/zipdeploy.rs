//! Container entrypoint: installs the package named by `--url` /
//! `PACKAGE_ZIP_URL` into `--dest` / `PACKAGE_DIR` with the library's
//! guarantees, then `exec`s the command after `--` inside it, so the app
//! replaces this process and receives the container's signals.
//!
//! ```sh
//! cargo build --release --example zipdeploy
//! PACKAGE_ZIP_URL=https://example.com/app.zip PACKAGE_SHA256=<hex> PACKAGE_DIR=/var/www/app \
//!     target/release/examples/zipdeploy --init init.sh -- php -S 0.0.0.0:8080
//! ```
//!
//! Every option can also come from an environment variable (a flag beats its
//! variable); `zipdeploy --help` lists them and the exit codes. All deploy
//! logic lives in the library; this file only maps options onto
//! [`zipdeploy::Deploy`] and reports the outcome.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zipdeploy::signature::PublicKey;
use zipdeploy::{
    Deploy, Error, ErrorClass, FetchOptions, Installed, Limits, Progress, Report, Stage, Status,
};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let cli = match Cli::parse(&args, &vars) {
        Ok(Parsed::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("zipdeploy {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(cli)) => cli,
        Err(err) => return fail(&Failure::Deploy(err), json_requested(&args, &vars)),
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => fail(&failure, cli.json),
    }
}

/// Installs the package (unless in development mode) or rolls back, then
/// execs COMMAND in DEST. Returns only when there is no COMMAND or something
/// failed; `Ok` holds the exit status.
fn run(cli: &Cli) -> Result<u8, Failure> {
    let workdir = match cli.mode {
        Mode::Status => return show_status(cli),
        Mode::Rollback => {
            let rollback = zipdeploy::rollback(&cli.dest)?;
            announce_rollback(cli, &rollback);
            rollback.status.dest
        }
        Mode::Deploy if !cli.urls.is_empty() => {
            catch_stop_signals()?;
            let result = install(cli);
            if let Some(signal) = stop_signal() {
                // Asked to stop: whatever the deploy did (it was cancelled,
                // or had just finished), COMMAND is not started.
                return Err(Failure::Stopped {
                    signal,
                    deployed: result.is_ok(),
                });
            }
            let report = result?;
            announce(cli, &report);
            report.dest
        }
        Mode::Deploy => {
            use_mounted_tree(cli)?;
            cli.dest.clone()
        }
    };
    match cli.command.split_first() {
        Some((program, args)) => Err(exec_in(&workdir, program, args, &cli.child_env)),
        None => Ok(0),
    }
}

// ---------------------------------------------------------------------------
// Options: one table drives flag parsing, environment fallbacks and --help.
// ---------------------------------------------------------------------------

/// One command-line option.
struct Opt {
    /// Long name without the dashes, e.g. `max-size`.
    name: &'static str,
    /// Placeholder of the value in the help, `None` for a switch.
    value: Option<&'static str>,
    /// Where its environment fallback comes from.
    env: EnvVar,
    /// May be given more than once.
    repeatable: bool,
    help: &'static str,
}

/// The environment variable read when an option is not on the command line.
#[derive(Clone, Copy)]
enum EnvVar {
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

const OPTIONS: &[Opt] = &[
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
        "directory to install into (state in ../.NAME.zipdeploy/)",
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
    Opt::value(
        "timeout",
        "SECS",
        EnvVar::Derived,
        "deadline for the whole download, retries included",
    ),
    Opt::value(
        "retries",
        "N",
        EnvVar::Derived,
        "retries on transient network errors",
    ),
    Opt::value(
        "speed-limit",
        "BYTES",
        EnvVar::Derived,
        "fail (and retry) a download slower than BYTES/s over --speed-time; 0: off",
    ),
    Opt::value(
        "speed-time",
        "SECS",
        EnvVar::Derived,
        "the window --speed-limit averages over",
    ),
    Opt::value(
        "max-size",
        "BYTES",
        EnvVar::Derived,
        "largest package accepted",
    ),
    Opt::value(
        "max-total-size",
        "BYTES",
        EnvVar::Derived,
        "largest total uncompressed size",
    ),
    Opt::value(
        "max-entries",
        "N",
        EnvVar::Derived,
        "most entries in the archive",
    ),
    Opt::value(
        "keep",
        "N",
        EnvVar::Derived,
        "previous releases kept for rollback",
    ),
    Opt::value(
        "cache",
        "DIR",
        EnvVar::Derived,
        "download cache shared by deploys (DIR/sha256/HEX.zip)",
    ),
    Opt::value(
        "cache-max-size",
        "BYTES",
        EnvVar::Derived,
        "largest total size of the cache (least recently used evicted)",
    ),
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
        "sync the tree to disk before activation (survives a power cut; slower)",
    ),
    Opt::switch(
        "progress",
        EnvVar::Derived,
        "show progress on stderr even when it is not a terminal",
    ),
    Opt::switch(
        "quiet",
        EnvVar::Derived,
        "no summary line and no automatic progress on stderr",
    ),
    Opt::switch(
        "json",
        EnvVar::Derived,
        "print a one-line JSON report (or error) on stdout",
    ),
    Opt::switch("version", EnvVar::None, "print the version and exit"),
    Opt::switch("help", EnvVar::None, "print this help and exit (also -h)"),
];

impl Opt {
    const fn value(
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
            help,
        }
    }

    const fn switch(name: &'static str, env: EnvVar, help: &'static str) -> Opt {
        Opt {
            name,
            value: None,
            env,
            repeatable: false,
            help,
        }
    }

    fn named(name: &str) -> Option<&'static Opt> {
        OPTIONS.iter().find(|opt| opt.name == name)
    }

    fn env_var(&self) -> Option<String> {
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
    fn file_form_of(&self) -> Option<&'static Opt> {
        match self.env {
            EnvVar::FileOf(option) => Opt::named(option),
            _ => None,
        }
    }
}

/// Where a raw option value came from, to name it in error messages.
#[derive(Clone)]
enum Origin {
    Flag(&'static str),
    Env(String),
    /// A file named by a flag (`--url-file`) or a variable (`*_FILE`). It
    /// may hold a secret: messages name the file, never what it holds.
    File {
        named_by: Box<Origin>,
        path: PathBuf,
    },
}

impl Origin {
    fn is_flag(&self) -> bool {
        match self {
            Origin::Flag(_) => true,
            Origin::Env(_) => false,
            Origin::File { named_by, .. } => named_by.is_flag(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "--{name}"),
            Origin::Env(var) => f.write_str(var),
            Origin::File { named_by, path } => match **named_by {
                Origin::Env(_) => write!(f, "{named_by}={}", path.display()),
                _ => write!(f, "{named_by} {}", path.display()),
            },
        }
    }
}

/// Option values as given, before conversion: flags first, then the
/// environment for options no flag set.
#[derive(Default)]
struct Given {
    values: BTreeMap<&'static str, (Origin, Vec<OsString>)>,
    command: Vec<OsString>,
}

impl Given {
    fn from_args(args: &[OsString]) -> Result<Given, Error> {
        let mut given = Given::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--" {
                given.command = args.cloned().collect();
                break;
            }
            let (opt, inline) = split_flag(arg)?;
            let value = match (opt.value, inline) {
                (None, Some(_)) => return Err(usage(format!("--{} takes no value", opt.name))),
                (None, None) => OsString::from("1"),
                (Some(_), Some(value)) => value,
                (Some(_), None) => args
                    .next()
                    .cloned()
                    .ok_or_else(|| usage(format!("--{} needs a value", opt.name)))?,
            };
            given.push_flag(opt, value)?;
        }
        Ok(given)
    }

    fn push_flag(&mut self, opt: &'static Opt, value: OsString) -> Result<(), Error> {
        if let Some(target) = opt.file_form_of() {
            return self.push_from_file(target, Origin::Flag(opt.name), Path::new(&value));
        }
        let (_, values) = self
            .values
            .entry(opt.name)
            .or_insert_with(|| (Origin::Flag(opt.name), Vec::new()));
        if !values.is_empty() && !opt.repeatable {
            return Err(usage(format!("--{} given more than once", opt.name)));
        }
        values.push(value);
        Ok(())
    }

    /// Fills options no flag set from their variables (or the files their
    /// `*_FILE` forms name); an unknown `ZIPDEPLOY_*` variable is an error,
    /// as a typo in one would silently change the deploy.
    fn add_env(&mut self, vars: &[(OsString, OsString)]) -> Result<(), Error> {
        for (key, value) in vars {
            let (opt, in_file) = match env_option(key) {
                Some(found) => found,
                None if key.as_bytes().starts_with(b"ZIPDEPLOY_") => {
                    return Err(unknown_variable(key))
                }
                None => continue,
            };
            if value.is_empty() {
                continue;
            }
            if in_file {
                refuse_value_and_file(opt, vars)?;
            }
            if self.values.contains_key(opt.name) {
                continue;
            }
            let origin = Origin::Env(key.to_string_lossy().into_owned());
            if in_file {
                self.push_from_file(opt, origin, Path::new(value))?;
            } else {
                self.values
                    .insert(opt.name, (origin, env_values(opt, value)));
            }
        }
        Ok(())
    }

    /// Adds the value(s) of `opt` held in the file at `path`, named by
    /// `named_by` (`--url-file`, `PACKAGE_ZIP_URL_FILE`).
    fn push_from_file(
        &mut self,
        opt: &'static Opt,
        named_by: Origin,
        path: &Path,
    ) -> Result<(), Error> {
        let origin = Origin::File {
            named_by: Box::new(named_by),
            path: path.to_path_buf(),
        };
        let read = values_from_file(opt, &origin, path)?;
        let (_, values) = self
            .values
            .entry(opt.name)
            .or_insert_with(|| (origin, Vec::new()));
        if !values.is_empty() && !opt.repeatable {
            return Err(usage(format!("--{} given more than once", opt.name)));
        }
        values.extend(read);
        Ok(())
    }

    fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    fn text(&self, name: &str) -> Result<Option<String>, Error> {
        let Some((origin, values)) = self.values.get(name) else {
            return Ok(None);
        };
        let value = values[0]
            .to_str()
            .ok_or_else(|| invalid(origin, "not UTF-8"))?;
        Ok(Some(value.to_string()))
    }

    /// Every value of a repeatable option.
    fn texts(&self, name: &str) -> Result<Vec<String>, Error> {
        let Some((origin, values)) = self.values.get(name) else {
            return Ok(Vec::new());
        };
        values
            .iter()
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(origin, "not UTF-8"))
            })
            .collect()
    }

    fn given_as_flag(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|(origin, _)| origin.is_flag())
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.values.get(name).map(|(_, v)| PathBuf::from(&v[0]))
    }

    fn parsed<T>(&self, name: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, Error> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        let origin = &self.values[name].0;
        let why = match origin {
            // What a file holds is not shown: it may be a secret.
            Origin::File { .. } => "not valid".to_string(),
            _ => format!("{text:?} is not valid"),
        };
        parse(&text).map(Some).ok_or_else(|| invalid(origin, &why))
    }

    fn switch(&self, name: &str) -> Result<bool, Error> {
        Ok(self.parsed(name, parse_bool)?.unwrap_or(false))
    }

    fn headers(&self) -> Result<Vec<(String, String)>, Error> {
        let Some((origin, values)) = self.values.get("header") else {
            return Ok(Vec::new());
        };
        values
            .iter()
            .map(|raw| {
                let line = raw.to_str().ok_or_else(|| invalid(origin, "not UTF-8"))?;
                // The value may be a secret: the message names only the problem.
                parse_header(line).ok_or_else(|| invalid(origin, "expected 'Name: value'"))
            })
            .collect()
    }
}

/// Splits `--name` / `--name=value` and looks the option up.
fn split_flag(arg: &OsStr) -> Result<(&'static Opt, Option<OsString>), Error> {
    let bytes = arg.as_bytes();
    let Some(flag) = bytes.strip_prefix(b"--") else {
        if bytes == b"-h" {
            return Ok((Opt::named("help").expect("help option"), None));
        }
        return Err(usage(format!(
            "unexpected argument {:?} (put COMMAND after --)",
            arg.to_string_lossy()
        )));
    };
    let (name, inline) = match flag.iter().position(|&b| b == b'=') {
        Some(eq) => (&flag[..eq], Some(OsStr::from_bytes(&flag[eq + 1..]).into())),
        None => (flag, None),
    };
    let name = String::from_utf8_lossy(name);
    let opt = Opt::named(&name).ok_or_else(|| usage(format!("unknown option --{name}")))?;
    Ok((opt, inline))
}

/// The option a variable configures, if it is one of ours, and whether the
/// variable is the `*_FILE` form that names a file holding the value.
fn env_option(key: &OsStr) -> Option<(&'static Opt, bool)> {
    let key = key.to_str()?;
    let by_var = |key: &str| {
        OPTIONS
            .iter()
            .find(|opt| opt.file_form_of().is_none() && opt.env_var().is_some_and(|var| var == key))
    };
    match by_var(key) {
        Some(opt) => Some((opt, false)),
        None => by_var(key.strip_suffix("_FILE")?).map(|opt| (opt, true)),
    }
}

fn unknown_variable(key: &OsStr) -> Error {
    let key = key.to_string_lossy();
    let option = key["ZIPDEPLOY_".len()..]
        .to_ascii_lowercase()
        .replace('_', "-");
    match Opt::named(&option).and_then(Opt::env_var) {
        Some(var) => usage(format!(
            "unknown environment variable {key} (--{option} reads {var})"
        )),
        None => usage(format!("unknown environment variable {key}")),
    }
}

/// A variable's values: one per line for repeatable options, but URLs
/// (mirrors) separated by any whitespace, which a URL never contains.
fn env_values(opt: &Opt, value: &OsStr) -> Vec<OsString> {
    if !opt.repeatable {
        return vec![value.to_owned()];
    }
    if opt.name == "url" {
        return value
            .as_bytes()
            .split(u8::is_ascii_whitespace)
            .filter(|url| !url.is_empty())
            .map(|url| OsStr::from_bytes(url).to_owned())
            .collect();
    }
    value
        .as_bytes()
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| OsStr::from_bytes(line).to_owned())
        .collect()
}

fn usage(message: String) -> Error {
    Error::Config(format!("{message}; see zipdeploy --help"))
}

fn invalid(origin: &Origin, why: &str) -> Error {
    usage(format!("invalid {origin}: {why}"))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A byte count, optionally with a binary suffix: `512`, `64K`, `500M`, `4G`.
fn parse_size(text: &str) -> Option<u64> {
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
fn parse_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
}

fn parse_header(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    let is_token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return None;
    }
    Some((name.to_string(), value.trim().to_string()))
}

/// An `--init` path must name a file inside the package.
fn package_relative(origin: &Origin, path: PathBuf) -> Result<PathBuf, Error> {
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

// ---------------------------------------------------------------------------
// Secrets: values read from files, and what --init and COMMAND inherit.
// ---------------------------------------------------------------------------

/// The largest file a value is read from: a URL list or a few headers.
const MAX_VALUE_FILE: u64 = 64 * 1024;

/// Reads the value(s) of `opt` from a file, the Docker / Kubernetes secrets
/// convention: trailing line breaks are dropped; in the files of repeatable
/// options (URLs, headers) blank lines and `#` lines are skipped. Errors
/// name the file, never what it holds.
fn values_from_file(opt: &Opt, origin: &Origin, path: &Path) -> Result<Vec<OsString>, Error> {
    use std::io::Read as _;
    let mut content = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_VALUE_FILE + 1).read_to_end(&mut content))
        .map_err(|e| usage(format!("cannot read {origin}: {e}")))?;
    if content.len() as u64 > MAX_VALUE_FILE {
        return Err(invalid(origin, "the file is larger than 64 KiB"));
    }
    let values = if opt.repeatable {
        let lines: Vec<&[u8]> = content
            .split(|&b| b == b'\n')
            .filter(|line| line.trim_ascii_start().first() != Some(&b'#'))
            .collect();
        env_values(opt, OsStr::from_bytes(&lines.join(&b'\n')))
    } else {
        let end = content
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |last| last + 1);
        let value = &content[..end];
        (!value.is_empty())
            .then(|| OsStr::from_bytes(value).to_owned())
            .into_iter()
            .collect()
    };
    if values.is_empty() {
        // An empty secret is a mount gone wrong; without a URL zipdeploy
        // would run COMMAND on the old tree instead of failing.
        return Err(invalid(origin, "the file holds no value"));
    }
    if opt.name == "header" {
        // Checked here, while the origin still names this file.
        for value in &values {
            let line = value.to_str().ok_or_else(|| invalid(origin, "not UTF-8"))?;
            parse_header(line).ok_or_else(|| invalid(origin, "expected 'Name: value' lines"))?;
        }
    }
    Ok(values)
}

/// `VAR` and `VAR_FILE` both set: which one is meant is a guess, so neither.
fn refuse_value_and_file(opt: &Opt, vars: &[(OsString, OsString)]) -> Result<(), Error> {
    let var = opt.env_var().expect("an option read from the environment");
    if vars
        .iter()
        .any(|(key, value)| key == var.as_str() && !value.is_empty())
    {
        return Err(usage(format!(
            "{var} and {var}_FILE are both set: give one"
        )));
    }
    Ok(())
}

/// Whether a variable is zipdeploy's own: `PACKAGE_ZIP_URL`,
/// `PACKAGE_SHA256`, `PACKAGE_DIR`, every `ZIPDEPLOY_*`, and their `_FILE`
/// forms. They carry the deploy's secrets (URL credentials, headers).
fn is_deploy_variable(key: &OsStr) -> bool {
    let key = key.as_bytes();
    let base = key.strip_suffix(b"_FILE").unwrap_or(key);
    key.starts_with(b"ZIPDEPLOY_")
        || OPTIONS
            .iter()
            .any(|opt| matches!(opt.env, EnvVar::Named(var) if var.as_bytes() == base))
}

/// The environment `--init` and COMMAND run with: zipdeploy's own
/// variables removed (guarantee 9: the deploy's secrets are not the app's),
/// unless `--pass-env`; and `PACKAGE_DIR` set to DEST as an absolute path,
/// so the init script (run in the staged tree) knows where it will live.
#[derive(Clone)]
struct ChildEnv {
    /// Inherited variables to remove.
    remove: Vec<OsString>,
    /// The value of `PACKAGE_DIR`.
    package_dir: PathBuf,
}

impl ChildEnv {
    fn new(vars: &[(OsString, OsString)], pass_env: bool, dest: &Path) -> ChildEnv {
        let remove = match pass_env {
            true => Vec::new(),
            false => vars
                .iter()
                .map(|(key, _)| key)
                .filter(|key| is_deploy_variable(key))
                .cloned()
                .collect(),
        };
        ChildEnv {
            remove,
            package_dir: std::path::absolute(dest).unwrap_or_else(|_| dest.to_path_buf()),
        }
    }

    fn apply(&self, command: &mut Command) {
        for key in &self.remove {
            command.env_remove(key);
        }
        command.env("PACKAGE_DIR", &self.package_dir);
    }
}

// ---------------------------------------------------------------------------
// The configuration, converted and checked.
// ---------------------------------------------------------------------------

/// What zipdeploy is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Install the package (or, without one, use DEST as it is).
    Deploy,
    /// Swap the previous kept release back in.
    Rollback,
    /// Show what is installed.
    Status,
}

/// What the command line and environment ask for.
struct Cli {
    mode: Mode,
    /// The package's locations: the URL, then its mirrors.
    urls: Vec<String>,
    sha256: Option<String>,
    sha256_from: Option<String>,
    minisign_key: Option<PublicKey>,
    minisign_sig: Option<String>,
    cache: Option<PathBuf>,
    cache_max_size: Option<u64>,
    dest: PathBuf,
    init: Option<PathBuf>,
    headers: Vec<(String, String)>,
    s3_endpoint: Option<url::Url>,
    s3_path_style: bool,
    timeout: Option<Duration>,
    retries: Option<u32>,
    speed_limit: Option<u64>,
    speed_time: Option<Duration>,
    max_size: Option<u64>,
    max_total_size: Option<u64>,
    max_entries: Option<u64>,
    keep: Option<usize>,
    sync: bool,
    progress: bool,
    quiet: bool,
    json: bool,
    command: Vec<OsString>,
    /// The environment of `--init` and COMMAND.
    child_env: ChildEnv,
}

enum Parsed {
    Help,
    Version,
    Run(Box<Cli>),
}

impl Cli {
    fn parse(args: &[OsString], vars: &[(OsString, OsString)]) -> Result<Parsed, Error> {
        let mut given = Given::from_args(args)?;
        if given.has("help") {
            return Ok(Parsed::Help);
        }
        if given.has("version") {
            return Ok(Parsed::Version);
        }
        given.add_env(vars)?;
        Cli::from_given(given, vars).map(|cli| Parsed::Run(Box::new(cli)))
    }

    fn from_given(given: Given, vars: &[(OsString, OsString)]) -> Result<Cli, Error> {
        let dest = given
            .path("dest")
            .ok_or_else(|| usage("no destination: give --dest or PACKAGE_DIR".into()))?;
        let mode = match (given.switch("rollback")?, given.switch("status")?) {
            (true, true) => return Err(usage("--rollback and --status exclude each other".into())),
            (true, false) => Mode::Rollback,
            (false, true) => Mode::Status,
            (false, false) => Mode::Deploy,
        };
        let urls = if mode == Mode::Deploy {
            given.texts("url")?
        } else {
            // PACKAGE_ZIP_URL may be set in the container's environment;
            // only a --url flag is a mistake here.
            if given.given_as_flag("url") {
                return Err(usage(
                    "--rollback and --status install nothing: drop --url".into(),
                ));
            }
            Vec::new()
        };
        if mode == Mode::Status && !given.command.is_empty() {
            return Err(usage("--status runs no COMMAND".into()));
        }
        if mode == Mode::Deploy && urls.is_empty() && given.command.is_empty() {
            return Err(usage(
                "no package URL (--url or PACKAGE_ZIP_URL) and no COMMAND to run".into(),
            ));
        }
        if given.has("sha256") && given.has("sha256-from") {
            return Err(usage("give --sha256 or --sha256-from, not both".into()));
        }
        if given.has("minisign-sig") && !given.has("minisign-key") {
            return Err(usage("--minisign-sig needs --minisign-key".into()));
        }
        let minisign_key = match given.text("minisign-key")? {
            Some(key) => Some(PublicKey::from_arg(&key)?),
            None => None,
        };
        let init = match given.path("init") {
            Some(path) => Some(package_relative(&given.values["init"].0, path)?),
            None => None,
        };
        let child_env = ChildEnv::new(vars, given.switch("pass-env")?, &dest);
        Ok(Cli {
            mode,
            urls,
            sha256: given.text("sha256")?,
            sha256_from: given.text("sha256-from")?,
            minisign_key,
            minisign_sig: given.text("minisign-sig")?,
            cache: given.path("cache"),
            cache_max_size: given.parsed("cache-max-size", parse_size)?,
            dest,
            init,
            headers: given.headers()?,
            s3_endpoint: given
                .text("s3-endpoint")?
                .map(|e| zipdeploy::s3::parse_endpoint(&e))
                .transpose()?,
            s3_path_style: given.switch("s3-path-style")?,
            timeout: given.parsed("timeout", parse_seconds)?,
            retries: given.parsed("retries", |t| t.parse().ok())?,
            speed_limit: given.parsed("speed-limit", parse_size)?,
            speed_time: given.parsed("speed-time", parse_seconds)?,
            max_size: given.parsed("max-size", parse_size)?,
            max_total_size: given.parsed("max-total-size", parse_size)?,
            max_entries: given.parsed("max-entries", |t| t.parse().ok())?,
            keep: given.parsed("keep", |t| t.parse().ok())?,
            sync: given.switch("sync")?,
            progress: given.switch("progress")?,
            quiet: given.switch("quiet")?,
            json: given.switch("json")?,
            child_env,
            command: given.command,
        })
    }

    fn shows_progress(&self) -> bool {
        self.progress || (!self.quiet && !self.json && io::stderr().is_terminal())
    }
}

/// Whether the caller asked for JSON, judged without a full parse (used to
/// report a parse failure in the requested format).
fn json_requested(args: &[OsString], vars: &[(OsString, OsString)]) -> bool {
    let flag = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let var = vars.iter().any(|(key, value)| {
        key == "ZIPDEPLOY_JSON" && value.to_str().and_then(parse_bool) == Some(true)
    });
    flag || var
}

// ---------------------------------------------------------------------------
// Deploying: options onto the library's builder.
// ---------------------------------------------------------------------------

fn install(cli: &Cli) -> Result<Report, Failure> {
    let mut meter = cli.shows_progress().then(Meter::new);
    // The library calls this at least every 100 ms, also while the server
    // is silent: a stop signal cancels the deploy within that.
    let deploy = configure(cli, Deploy::new(&cli.urls[0])?)?.progress(|p| {
        if stop_signal().is_some() {
            return ControlFlow::Break(());
        }
        match meter.as_mut() {
            Some(meter) => meter.update(p),
            None => ControlFlow::Continue(()),
        }
    });
    let result = deploy.run();
    if let Some(meter) = meter.as_mut() {
        meter.clear();
    }
    Ok(result?)
}

fn configure<'a>(cli: &Cli, deploy: Deploy<'a>) -> Result<Deploy<'a>, Error> {
    let mut deploy = deploy
        .dest(&cli.dest)
        .fetch_options(fetch_options(cli))
        .limits(limits(cli))
        .durable(cli.sync);
    if let Some(hex) = &cli.sha256 {
        deploy = deploy.sha256(hex)?;
    }
    for mirror in &cli.urls[1..] {
        deploy = deploy.mirror(mirror)?;
    }
    if let Some(sidecar) = &cli.sha256_from {
        deploy = deploy.sha256_from(sidecar)?;
    }
    if let Some(key) = &cli.minisign_key {
        deploy = deploy.minisign_key(key.clone());
    }
    if let Some(sig) = &cli.minisign_sig {
        deploy = deploy.minisign_signature(sig)?;
    }
    if let Some(dir) = &cli.cache {
        deploy = deploy.cache(dir);
    }
    if let Some(bytes) = cli.cache_max_size {
        deploy = deploy.cache_max_size(bytes);
    }
    if let Some(keep) = cli.keep {
        deploy = deploy.keep(keep);
    }
    if let Some(script) = cli.init.clone() {
        let env = cli.child_env.clone();
        deploy = deploy.before_activate(move |staged| run_init(staged, &script, &env));
    }
    Ok(deploy)
}

fn fetch_options(cli: &Cli) -> FetchOptions {
    let defaults = FetchOptions::default();
    FetchOptions {
        timeout: cli.timeout.or(defaults.timeout),
        retries: cli.retries.unwrap_or(defaults.retries),
        speed_limit: cli.speed_limit.unwrap_or(defaults.speed_limit),
        speed_time: cli.speed_time.unwrap_or(defaults.speed_time),
        max_size: cli.max_size.unwrap_or(defaults.max_size),
        headers: cli.headers.clone(),
        s3: zipdeploy::s3::S3Options {
            endpoint: cli.s3_endpoint.clone(),
            path_style: cli.s3_path_style,
            ..defaults.s3.clone()
        },
        ..defaults
    }
}

fn limits(cli: &Cli) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_total_size: cli.max_total_size.unwrap_or(defaults.max_total_size),
        max_entries: cli.max_entries.unwrap_or(defaults.max_entries),
        ..defaults
    }
}

/// Runs `sh SCRIPT` in the staged tree. Its stdout goes to our stderr so
/// stdout stays clean for `--json`; stdin is closed so it cannot hang.
fn run_init(staged: &Path, script: &Path, env: &ChildEnv) -> Result<(), String> {
    let shown = script.display();
    let resolved = staged
        .join(script)
        .canonicalize()
        .map_err(|e| format!("init script {shown}: {e}"))?;
    let root = staged
        .canonicalize()
        .map_err(|e| format!("staged tree: {e}"))?;
    if !resolved.starts_with(&root) {
        return Err(format!("init script {shown} points outside the package"));
    }
    if !resolved.is_file() {
        return Err(format!("init script {shown} is not a regular file"));
    }
    let mut sh = Command::new("sh");
    env.apply(&mut sh);
    let child = sh
        .arg(Path::new(".").join(script))
        .current_dir(staged)
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .spawn()
        .map_err(|e| format!("cannot run sh for init script {shown}: {e}"))?;
    let status =
        wait_unless_stopped(child).map_err(|e| format!("waiting for init script {shown}: {e}"))?;
    match describe_failure(status) {
        None => Ok(()),
        Some(how) => Err(format!("init script {shown} {how}")),
    }
}

/// Waits for `child`, killing it if a stop signal comes first.
fn wait_unless_stopped(mut child: Child) -> io::Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if stop_signal().is_some() {
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe_failure(status: ExitStatus) -> Option<String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exited with status {code}")),
        (None, Some(signal)) => Some(format!("was killed by signal {signal}")),
        (None, None) => Some(format!("failed ({status})")),
    }
}

/// Development mode: no package, the tree in DEST (e.g. a mount) is used as is.
fn use_mounted_tree(cli: &Cli) -> Result<(), Failure> {
    if !cli.dest.is_dir() {
        return Err(Failure::Deploy(usage(format!(
            "no package URL given and {} is not a directory",
            cli.dest.display()
        ))));
    }
    if !cli.quiet && !cli.json {
        eprintln!(
            "zipdeploy: no package URL; running the command in {} as it is",
            cli.dest.display()
        );
    }
    Ok(())
}

/// Replaces this process with COMMAND, in `dir`; returns only on failure.
fn exec_in(dir: &Path, program: &OsStr, args: &[OsString], env: &ChildEnv) -> Failure {
    if let Err(source) = std::env::set_current_dir(dir) {
        return Failure::Deploy(Error::Io {
            op: "enter",
            path: dir.to_path_buf(),
            source,
        });
    }
    let _ = io::stdout().flush();
    let mut command = Command::new(program);
    env.apply(&mut command);
    let error = command.args(args).exec();
    Failure::Exec {
        program: program.to_string_lossy().into_owned(),
        error,
    }
}

// ---------------------------------------------------------------------------
// Reporting: summary line, JSON, progress meter, failures.
// ---------------------------------------------------------------------------

/// Tells the caller what happened: JSON on stdout, or a summary on stderr.
fn announce(cli: &Cli, report: &Report) {
    if cli.json {
        println!("{}", report_json(report));
    } else if !cli.quiet {
        eprintln!("zipdeploy: {}", summary(report));
    }
}

/// `--status`: what is installed, on stdout. Exit 0 when something is,
/// 1 when nothing is.
fn show_status(cli: &Cli) -> Result<u8, Failure> {
    let status = zipdeploy::status(&cli.dest)?;
    if cli.json {
        println!("{}", status_json(&status));
    } else {
        print!("{}", status_text(&status));
    }
    Ok(if status.current.is_some() { 0 } else { 1 })
}

fn status_text(status: &Status) -> String {
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

fn record_json(record: &Installed) -> JsonObject {
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

fn status_json(status: &Status) -> String {
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
fn announce_rollback(cli: &Cli, rollback: &zipdeploy::Rollback) {
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

fn summary(report: &Report) -> String {
    let dest = report.dest.display();
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

fn report_json(report: &Report) -> String {
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
    let skipped: Vec<String> = report
        .mirrors_skipped
        .iter()
        .map(|why| {
            let mut s = String::new();
            escape_json(why, &mut s);
            s
        })
        .collect();
    let json = json.raw("mirrors_skipped", &format!("[{}]", skipped.join(",")));
    json.object("timings_ms", timings).finish()
}

/// Builds one JSON object. Keys are literals of this file; string values
/// are escaped.
struct JsonObject(String);

impl JsonObject {
    fn new() -> Self {
        JsonObject(String::from("{"))
    }

    fn key(mut self, key: &str) -> Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
        self
    }

    fn string(self, key: &str, value: &str) -> Self {
        let mut this = self.key(key);
        escape_json(value, &mut this.0);
        this
    }

    fn number(self, key: &str, value: u64) -> Self {
        let mut this = self.key(key);
        this.0.push_str(&value.to_string());
        this
    }

    fn boolean(self, key: &str, value: bool) -> Self {
        let mut this = self.key(key);
        this.0.push_str(if value { "true" } else { "false" });
        this
    }

    /// A value already in JSON (`null`, an array built here).
    fn raw(self, key: &str, json: &str) -> Self {
        let mut this = self.key(key);
        this.0.push_str(json);
        this
    }

    fn object(self, key: &str, value: JsonObject) -> Self {
        let mut this = self.key(key);
        this.0.push_str(&value.finish());
        this
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Writes `text` as a JSON string literal (RFC 8259: quote, backslash and
/// control characters escaped; everything else is valid UTF-8 as is).
fn escape_json(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Progress on stderr, redrawn in place with `\r` at most ten times a second.
struct Meter {
    stage: Option<Stage>,
    stage_started: Instant,
    last_draw: Option<Instant>,
    /// Width of the line on screen, to blank what a shorter one leaves.
    width: usize,
}

impl Meter {
    const INTERVAL: Duration = Duration::from_millis(100);

    fn new() -> Self {
        Meter {
            stage: None,
            stage_started: Instant::now(),
            last_draw: None,
            width: 0,
        }
    }

    fn update(&mut self, progress: &Progress) -> ControlFlow<()> {
        let now = Instant::now();
        let new_stage = self.stage != Some(progress.stage);
        if new_stage {
            self.stage = Some(progress.stage);
            self.stage_started = now;
        }
        let due = self.last_draw.is_none_or(|t| now - t >= Self::INTERVAL);
        if new_stage || due {
            self.draw(&progress_line(progress, now - self.stage_started));
            self.last_draw = Some(now);
        }
        ControlFlow::Continue(())
    }

    fn draw(&mut self, line: &str) {
        let width = line.chars().count();
        let blank = " ".repeat(self.width.saturating_sub(width));
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}{blank}");
        let _ = err.flush();
        self.width = width;
    }

    /// Blanks the line so the next message starts clean.
    fn clear(&mut self) {
        if self.width > 0 {
            let _ = write!(io::stderr(), "\r{}\r", " ".repeat(self.width));
            self.width = 0;
        }
    }
}

fn progress_line(p: &Progress, elapsed: Duration) -> String {
    let rate = match elapsed.as_secs_f64() {
        secs if secs > 0.0 => format!("  {}/s", human_bytes((p.bytes as f64 / secs) as u64)),
        _ => String::new(),
    };
    let bytes = match p.total_bytes {
        Some(total) => format!("{} / {}", human_bytes(p.bytes), human_bytes(total)),
        None => human_bytes(p.bytes),
    };
    match p.stage {
        Stage::Fetch => format!("zipdeploy: fetch    {bytes}{rate}"),
        Stage::Extract => {
            let total = p.total_entries.map(|t| format!("/{t}")).unwrap_or_default();
            format!(
                "zipdeploy: extract  {}{total} entries  {bytes}{rate}",
                p.entries
            )
        }
        Stage::Install => format!("zipdeploy: install  {bytes}"),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

// ---------------------------------------------------------------------------
// Stop signals: SIGTERM, SIGINT and SIGHUP cancel a deploy.
// ---------------------------------------------------------------------------

/// The stop signal received during the deploy; 0 while none came.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by the first stop signal: a second one exits at once.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Makes SIGTERM, SIGINT and SIGHUP cancel the deploy: the progress callback
/// sees the flag within 100 ms (the library calls it as a heartbeat even
/// while a server stalls), the library removes its work files and leaves
/// DEST as it was, and zipdeploy exits with 128 + the signal. This matters
/// most as PID 1 of a container, where a signal without a handler is simply
/// dropped and `docker stop` would end in SIGKILL. A second signal exits at
/// once (the next run cleans up what is left). `exec` resets caught signals
/// to their defaults, so COMMAND handles its signals itself.
fn catch_stop_signals() -> Result<(), Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        // Registered first, so it runs before the flag is set below.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, &STOPPING)
            .and_then(|_| signal_hook::flag::register(signal, &STOPPING))
            .and_then(|_| signal_hook::flag::register_usize(signal, &STOP_SIGNAL, signal as usize))
            .map_err(|e| {
                Failure::Deploy(Error::Config(format!("cannot handle signal {signal}: {e}")))
            })?;
    }
    Ok(())
}

/// The stop signal received, if any.
fn stop_signal() -> Option<u8> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => u8::try_from(signal).ok(),
    }
}

/// Why zipdeploy stops without exec'ing COMMAND.
enum Failure {
    /// The deploy (or the configuration) failed: the library's error.
    Deploy(Error),
    /// A stop signal came: the deploy was cancelled (or had just finished,
    /// `deployed`), and COMMAND is not started.
    Stopped { signal: u8, deployed: bool },
    /// COMMAND could not be started.
    Exec { program: String, error: io::Error },
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Deploy(err)
    }
}

impl Failure {
    /// The exit status: the error class, or 127/126 as a shell reports a
    /// command not found / not runnable.
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Deploy(err) => err.class() as u8,
            Failure::Stopped { signal, .. } => 128 + signal,
            Failure::Exec { error, .. } if error.kind() == io::ErrorKind::NotFound => 127,
            Failure::Exec { .. } => 126,
        }
    }

    fn to_json(&self) -> String {
        let (code, class) = match self {
            Failure::Deploy(err) => (u64::from(err.code()), class_name(err.class())),
            Failure::Stopped { .. } => (
                u64::from(Error::Cancelled.code()),
                class_name(ErrorClass::Cancelled),
            ),
            Failure::Exec { .. } => (u64::from(self.exit_code()), "exec"),
        };
        let error = JsonObject::new()
            .number("code", code)
            .string("class", class)
            .string("message", &self.to_string());
        JsonObject::new().object("error", error).finish()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Deploy(err) => write!(f, "{err}"),
            Failure::Stopped { signal, deployed } => {
                let name = match i32::from(*signal) {
                    signal_hook::consts::SIGTERM => "SIGTERM",
                    signal_hook::consts::SIGINT => "SIGINT",
                    signal_hook::consts::SIGHUP => "SIGHUP",
                    _ => "a signal",
                };
                if *deployed {
                    write!(f, "stopped by {name} after the deploy; COMMAND not started")
                } else {
                    write!(
                        f,
                        "stopped by {name}: deploy cancelled, destination unchanged"
                    )
                }
            }
            Failure::Exec { program, error } => write!(f, "cannot run {program}: {error}"),
        }
    }
}

fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Usage => "usage",
        ErrorClass::Network => "network",
        ErrorClass::Digest => "digest",
        ErrorClass::Archive => "archive",
        ErrorClass::Limit => "limit",
        ErrorClass::Filesystem => "filesystem",
        ErrorClass::Hook => "hook",
        ErrorClass::Cancelled => "cancelled",
    }
}

/// Reports a failure: one line on stderr, and a JSON line on stdout if asked.
fn fail(failure: &Failure, json: bool) -> ExitCode {
    if json {
        println!("{}", failure.to_json());
    }
    eprintln!("zipdeploy: error: {failure}");
    ExitCode::from(failure.exit_code())
}

// ---------------------------------------------------------------------------
// --help
// ---------------------------------------------------------------------------

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
        "limit: --max-size, --max-total-size, --max-entries, ratio",
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

fn default_shown(opt: &Opt) -> Option<String> {
    let fetch = FetchOptions::default();
    let limits = Limits::default();
    Some(match opt.name {
        "timeout" => "none".into(),
        "retries" => fetch.retries.to_string(),
        "speed-limit" => human_size(fetch.speed_limit),
        "speed-time" => format!("{}", fetch.speed_time.as_secs_f64()),
        "max-size" => human_size(fetch.max_size),
        "max-total-size" => human_size(limits.max_total_size),
        "max-entries" => limits.max_entries.to_string(),
        "keep" => "1".into(),
        "cache-max-size" => human_size(zipdeploy::cache::DEFAULT_MAX_SIZE),
        _ => return None,
    })
}

/// A size in the suffix notation `parse_size` accepts.
fn human_size(bytes: u64) -> String {
    let suffixes = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, suffix) in suffixes {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn help_text() -> String {
    let mut text = String::from(
        "zipdeploy: install a ZIP package into a directory, then run a command in it\n\n\
         Usage: zipdeploy --url URL [--sha256 HEX] --dest DIR [options] [-- COMMAND ARGS...]\n\
         \x20      zipdeploy --dest DIR -- COMMAND ARGS...   (no URL: run in DIR as it is)\n\
         \x20      zipdeploy --rollback --dest DIR [-- COMMAND ARGS...]\n\
         \x20      zipdeploy --status --dest DIR [--json]\n\n\
         Downloads the package, checks its SHA-256, extracts it with every entry checked,\n\
         runs --init in the staged tree (its stdout goes to stderr) and swaps the tree into\n\
         DIR atomically; on any failure DIR is left as it was. A digest already installed\n\
         is not fetched again. COMMAND then replaces zipdeploy (exec) in DIR.\n\n\
         Options (a flag beats its environment variable; --opt=value also works):\n",
    );
    for opt in OPTIONS {
        let flag = match opt.value {
            Some(value) => format!("--{} {value}", opt.name),
            None => format!("--{}", opt.name),
        };
        text.push_str(&format!("  {flag:<24}{}\n", opt.help));
        let mut notes = Vec::new();
        if let Some(var) = opt.env_var() {
            notes.push(format!("env {var}"));
        }
        if let Some(default) = default_shown(opt) {
            notes.push(format!("default {default}"));
        }
        if !notes.is_empty() {
            text.push_str(&format!("  {:<24}[{}]\n", "", notes.join(", ")));
        }
    }
    text.push_str(
        "\nSizes take a K, M, G or T suffix (powers of 1024); switches read 1/0, true/false,\n\
         yes/no or on/off from their variables. Empty variables count as unset; other\n\
         ZIPDEPLOY_* variables are refused. PACKAGE_ZIP_URL may hold several URLs (the URL\n\
         and its mirrors, tried in order) separated by whitespace.\n\n\
         Secrets: every variable VAR may instead be given as VAR_FILE=PATH (a Docker or\n\
         Kubernetes secret): the value is read from PATH, trailing line breaks dropped;\n\
         URL and header files skip blank and # lines. VAR and VAR_FILE together are an\n\
         error; errors name the file, never its content. --init and COMMAND do not see\n\
         zipdeploy's variables (PACKAGE_ZIP_URL, PACKAGE_SHA256, PACKAGE_DIR, ZIPDEPLOY_*\n\
         and their _FILE forms) unless --pass-env; PACKAGE_DIR is set for them to DEST's\n\
         absolute path.\n\nExit status:\n",
    );
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("  {code:<5}{meaning}\n"));
    }
    text
}
