//! The configuration, converted and checked.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use zipdeploy::signature::PublicKey;
use zipdeploy::{Error, Layout, NetrcFile};

use crate::given::Given;
use crate::secrets::ChildEnv;
use crate::values::{package_relative, parse_bool, parse_size, usage};

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
    /// The package's locations: the URL, then its mirrors.
    pub urls: Vec<String>,
    pub sha256: Option<String>,
    pub sha256_from: Option<String>,
    pub minisign_key: Option<PublicKey>,
    pub minisign_sig: Option<String>,
    pub cache: Option<PathBuf>,
    pub cache_max_size: Option<u64>,
    pub dest: PathBuf,
    pub init: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    pub cacert: Option<PathBuf>,
    /// The netrc file to read; `None` for the default (`NETRC`, `~/.netrc`).
    pub netrc: Option<NetrcFile>,
    pub s3_endpoint: Option<url::Url>,
    pub s3_path_style: bool,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub stall_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub connections: Option<u32>,
    pub speed_limit: Option<u64>,
    pub speed_time: Option<Duration>,
    pub max_size: Option<u64>,
    pub max_total_size: Option<u64>,
    pub max_entries: Option<u64>,
    pub keep: Option<usize>,
    pub sync: bool,
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
            cacert: given.path("cacert"),
            netrc,
            s3_endpoint: given
                .text("s3-endpoint")?
                .map(|e| zipdeploy::s3::parse_endpoint(&e))
                .transpose()?,
            s3_path_style: given.switch("s3-path-style")?,
            timeout: given.duration("timeout")?,
            connect_timeout: given.duration("connect-timeout")?,
            stall_timeout: given.duration("stall-timeout")?,
            retries: given.parsed("retries", |t| t.parse().ok())?,
            connections: given.parsed("connections", |t| t.parse().ok().filter(|n| *n >= 1))?,
            speed_limit: given.parsed("speed-limit", parse_size)?,
            speed_time: given.duration("speed-time")?,
            max_size: given.parsed("max-size", parse_size)?,
            max_total_size: given.parsed("max-total-size", parse_size)?,
            max_entries: given.parsed("max-entries", |t| t.parse().ok())?,
            keep: given.parsed("keep", |t| t.parse().ok())?,
            sync: given.switch("sync")?,
            progress: given.switch("progress")?,
            quiet,
            verbose,
            json: given.switch("json")?,
            child_env,
            command: given.command,
        })
    }

    pub fn shows_progress(&self) -> bool {
        !self.quiet && (self.progress || (!self.json && io::stderr().is_terminal()))
    }
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
