//! Secrets: values read from files, and what --init and COMMAND inherit.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use zipdeploy::Error;

use crate::given::{env_values, Origin};
use crate::options::{EnvVar, Opt, OPTIONS};
use crate::values::{invalid, parse_header, usage};

/// The largest file a value is read from: a URL list or a few headers.
const MAX_VALUE_FILE: u64 = 64 * 1024;

/// Reads the value(s) of `opt` from a file, the Docker / Kubernetes secrets
/// convention: trailing line breaks are dropped; in the files of repeatable
/// options (URLs, headers) blank lines and `#` lines are skipped. Errors
/// name the file, never what it holds.
pub fn values_from_file(opt: &Opt, origin: &Origin, path: &Path) -> Result<Vec<OsString>, Error> {
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
pub fn refuse_value_and_file(opt: &Opt, vars: &[(OsString, OsString)]) -> Result<(), Error> {
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
pub fn is_deploy_variable(key: &OsStr) -> bool {
    let key = key.as_bytes();
    let base = key.strip_suffix(b"_FILE").unwrap_or(key);
    key.starts_with(b"ZIPDEPLOY_")
        || OPTIONS
            .iter()
            .any(|opt| matches!(opt.env, EnvVar::Named(var) if var.as_bytes() == base))
}

/// The environment `--init` and COMMAND run with: zipdeploy's own
/// variables removed (guarantee 9: the deploy's secrets are not the app's),
/// unless `--pass-env`; and `PACKAGE_DIR` set to where the tree lives (DEST,
/// or `DEST/current` when DEST is a mount point) as an absolute path, so the
/// init script (run in the staged tree) knows where it will live.
#[derive(Clone)]
pub struct ChildEnv {
    /// Inherited variables to remove.
    pub remove: Vec<OsString>,
    /// The value of `PACKAGE_DIR`.
    pub package_dir: PathBuf,
}

impl ChildEnv {
    pub fn new(vars: &[(OsString, OsString)], pass_env: bool, dest: &Path) -> ChildEnv {
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

    pub fn apply(&self, command: &mut Command) {
        for key in &self.remove {
            command.env_remove(key);
        }
        command.env("PACKAGE_DIR", &self.package_dir);
    }
}
