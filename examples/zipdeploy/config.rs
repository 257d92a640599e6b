//! The configuration, converted and checked.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use zipdeploy::signature::PublicKey;
use zipdeploy::{DeployOptions, Error, Layout, NetrcFile, Source};

use crate::given::Given;
use crate::secrets::ChildEnv;
use crate::values::{package_relative, parse_bool, parse_limit, parse_size, usage};

/// What zipdeploy is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Install the package (or, without one, use DEST as it is).
    Deploy,
    /// Swap the previous kept release back in.
    Rollback,
    /// Show what is installed.
    Status,
}

/// What the command line and environment ask for.
pub struct Cli {
    pub mode: Mode,
    /// The package's location; `None` without one (development mode,
    /// `--rollback`, `--status`). Its mirrors are in `options`.
    pub source: Option<Source>,
    /// Every setting of the deploy, in the library's one options value.
    pub options: DeployOptions,
    pub dest: PathBuf,
    pub init: Option<PathBuf>,
    pub progress: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    pub command: Vec<OsString>,
    /// The environment of `--init` and COMMAND.
    pub child_env: ChildEnv,
}

pub enum Parsed {
    Help,
    Version,
    Run(Box<Cli>),
}

impl Cli {
    pub fn parse(args: &[OsString], vars: &[(OsString, OsString)]) -> Result<Parsed, Error> {
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

    pub fn from_given(given: Given, vars: &[(OsString, OsString)]) -> Result<Cli, Error> {
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
        let (quiet, verbose) = (given.switch("quiet")?, given.switch("verbose")?);
        if quiet && verbose {
            return Err(usage("--quiet and --verbose exclude each other".into()));
        }
        let netrc = match (given.path("netrc-file"), given.switch("no-netrc")?) {
            (Some(_), true) => {
                return Err(usage(
                    "--netrc-file and --no-netrc exclude each other".into(),
                ))
            }
            (Some(path), false) => Some(NetrcFile::Required(path)),
            (None, true) => Some(NetrcFile::Disabled),
            (None, false) => None,
        };
        // Where the tree will be, for PACKAGE_DIR: one level down when DEST
        // is a mount point. Without a URL, DEST is used as it is.
        let tree = match Layout::new(&dest) {
            Ok(layout) if mode != Mode::Deploy || !urls.is_empty() => layout.dest().to_path_buf(),
            _ => dest.clone(),
        };
        let child_env = ChildEnv::new(vars, given.switch("pass-env")?, &tree);
        let mut options = settings(&given, netrc, minisign_key)?;
        let (progress, json) = (given.switch("progress")?, given.switch("json")?);
        // Locations and digests are read only when there is a package to
        // deploy: a stale PACKAGE_SHA256 does not stop --status.
        let source = match urls.split_first() {
            Some((url, mirrors)) => Some(package(&given, url, mirrors, &mut options)?),
            None => None,
        };
        Ok(Cli {
            mode,
            source,
            options,
            dest,
            init,
            progress,
            quiet,
            verbose,
            json,
            child_env,
            command: given.command,
        })
    }

    pub fn shows_progress(&self) -> bool {
        !self.quiet && (self.progress || (!self.json && io::stderr().is_terminal()))
    }
}

/// The library's settings from what is given: each option left out keeps
/// the library's default.
fn settings(
    given: &Given,
    netrc: Option<NetrcFile>,
    minisign_key: Option<PublicKey>,
) -> Result<DeployOptions, Error> {
    let mut options = DeployOptions::default();
    options.minisign_key = minisign_key;
    options.cache = given.path("cache");
    if let Some(bytes) = given.parsed("cache-max-size", parse_limit)? {
        options.cache_max_size = bytes;
    }
    let fetch = &mut options.fetch;
    fetch.headers = given.headers()?;
    if let Some(netrc) = netrc {
        fetch.netrc = netrc;
    }
    if let Some(endpoint) = given.text("s3-endpoint")? {
        fetch.s3.endpoint = Some(zipdeploy::s3::parse_endpoint(&endpoint)?);
    }
    fetch.s3.path_style = given.switch("s3-path-style")?;
    fetch.timeout = given.duration("timeout")?.or(fetch.timeout);
    if let Some(timeout) = given.duration("connect-timeout")? {
        fetch.connect_timeout = timeout;
    }
    if let Some(timeout) = given.duration("stall-timeout")? {
        fetch.stall_timeout = timeout;
    }
    if let Some(retries) = given.parsed("retries", |t| t.parse().ok())? {
        fetch.retries = retries;
    }
    if let Some(n) = given.parsed("connections", |t| t.parse().ok().filter(|n| *n >= 1))? {
        fetch.connections = n;
    }
    if let Some(bytes) = given.parsed("speed-limit", parse_size)? {
        fetch.speed_limit = bytes;
    }
    if let Some(time) = given.duration("speed-time")? {
        fetch.speed_time = time;
    }
    if let Some(bytes) = given.parsed("max-size", parse_limit)? {
        fetch.max_size = bytes;
    }
    let limits = &mut options.limits;
    if let Some(bytes) = given.parsed("max-total-size", parse_limit)? {
        limits.max_total_size = bytes;
    }
    if let Some(entries) = given.parsed("max-entries", |t| t.parse().ok().filter(|&n| n > 0))? {
        limits.max_entries = entries;
    }
    if let Some(keep) = given.parsed("keep", |t| t.parse().ok())? {
        options.keep = keep;
    }
    options.durable = given.switch("sync")?;
    Ok(options)
}

/// The package's location, and into `options` what names or checks it:
/// its digest (or sidecar), mirrors, signature, and the CA to trust.
fn package(
    given: &Given,
    url: &str,
    mirrors: &[String],
    options: &mut DeployOptions,
) -> Result<Source, Error> {
    let source = Source::parse(url)?;
    if let Some(hex) = given.text("sha256")? {
        options.sha256 = Some(hex.parse()?);
    }
    if let Some(path) = given.path("cacert") {
        let pem = zipdeploy::fetch::read_cacert_file(&path)?;
        options.fetch.root_certs_pem.push(pem);
    }
    for mirror in mirrors {
        options.mirrors.push(Source::parse(mirror)?);
    }
    if let Some(sidecar) = given.text("sha256-from")? {
        options.sha256_from = Some(Source::parse(&sidecar)?);
    }
    if let Some(sig) = given.text("minisign-sig")? {
        options.minisign_signature = Some(Source::parse(&sig)?);
    }
    Ok(source)
}

/// Whether the caller asked for JSON, judged without a full parse (used to
/// report a parse failure in the requested format).
pub fn json_requested(args: &[OsString], vars: &[(OsString, OsString)]) -> bool {
    let flag = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let var = vars.iter().any(|(key, value)| {
        key == "ZIPDEPLOY_JSON" && value.to_str().and_then(parse_bool) == Some(true)
    });
    flag || var
}
