//! Option values as given: flags, then environment variables and the files
//! their `_FILE` forms name, before conversion.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zipdeploy::Error;

use crate::options::{EnvVar, Opt, OPTIONS};
use crate::secrets::{refuse_value_and_file, values_from_file};
use crate::values::{invalid, parse_bool, parse_duration, parse_header, usage, DURATION_FORMS};

/// Where a raw option value came from, to name it in error messages.
#[derive(Clone)]
pub enum Origin {
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
    pub fn is_flag(&self) -> bool {
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
pub struct Given {
    pub values: BTreeMap<&'static str, (Origin, Vec<OsString>)>,
    pub command: Vec<OsString>,
}

impl Given {
    pub fn from_args(args: &[OsString]) -> Result<Given, Error> {
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

    pub fn push_flag(&mut self, opt: &'static Opt, value: OsString) -> Result<(), Error> {
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
    pub fn add_env(&mut self, vars: &[(OsString, OsString)]) -> Result<(), Error> {
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
    pub fn push_from_file(
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

    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn text(&self, name: &str) -> Result<Option<String>, Error> {
        let Some((origin, values)) = self.values.get(name) else {
            return Ok(None);
        };
        let value = values[0]
            .to_str()
            .ok_or_else(|| invalid(origin, "not UTF-8"))?;
        Ok(Some(value.to_string()))
    }

    /// Every value of a repeatable option.
    pub fn texts(&self, name: &str) -> Result<Vec<String>, Error> {
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

    pub fn given_as_flag(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|(origin, _)| origin.is_flag())
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.values.get(name).map(|(_, v)| PathBuf::from(&v[0]))
    }

    pub fn parsed<T>(&self, name: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, Error> {
        self.parsed_as(name, parse, None)
    }

    /// A duration option: a bad value is refused with the forms accepted.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, Error> {
        self.parsed_as(name, parse_duration, Some(DURATION_FORMS))
    }

    /// The value converted by `parse`; a refusal names the origin and, if
    /// given, what was `expected`.
    fn parsed_as<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        expected: Option<&str>,
    ) -> Result<Option<T>, Error> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        let origin = &self.values[name].0;
        let mut why = match origin {
            // What a file holds is not shown: it may be a secret.
            Origin::File { .. } => "not valid".to_string(),
            _ => format!("{text:?} is not valid"),
        };
        if let Some(expected) = expected {
            why.push_str(&format!(" (expected {expected})"));
        }
        parse(&text).map(Some).ok_or_else(|| invalid(origin, &why))
    }

    pub fn switch(&self, name: &str) -> Result<bool, Error> {
        Ok(self.parsed(name, parse_bool)?.unwrap_or(false))
    }

    pub fn headers(&self) -> Result<Vec<(String, String)>, Error> {
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
pub fn split_flag(arg: &OsStr) -> Result<(&'static Opt, Option<OsString>), Error> {
    let bytes = arg.as_bytes();
    let Some(flag) = bytes.strip_prefix(b"--") else {
        let short = match bytes {
            [b'-', letter] => Opt::by_short(char::from(*letter)),
            _ => None,
        };
        return match short {
            Some(opt) => Ok((opt, None)),
            None => Err(usage(format!(
                "unexpected argument {:?} (put COMMAND after --)",
                arg.to_string_lossy()
            ))),
        };
    };
    let (name, inline) = match flag.iter().position(|&b| b == b'=') {
        Some(eq) => (&flag[..eq], Some(OsStr::from_bytes(&flag[eq + 1..]).into())),
        None => (flag, None),
    };
    let name = String::from_utf8_lossy(name);
    let opt = Opt::named(&name).ok_or_else(|| match Opt::closest(&name) {
        Some(meant) => usage(format!(
            "unknown option --{name} (did you mean --{}?)",
            meant.name
        )),
        None => usage(format!("unknown option --{name}")),
    })?;
    Ok((opt, inline))
}

/// The option a variable configures, if it is one of ours, and whether the
/// variable is the `*_FILE` form that names a file holding the value.
pub fn env_option(key: &OsStr) -> Option<(&'static Opt, bool)> {
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

pub fn unknown_variable(key: &OsStr) -> Error {
    let key = key.to_string_lossy();
    let option = key["ZIPDEPLOY_".len()..]
        .to_ascii_lowercase()
        .replace('_', "-");
    if let Some(var) = Opt::named(&option).and_then(Opt::env_var) {
        return usage(format!(
            "unknown environment variable {key} (--{option} reads {var})"
        ));
    }
    let meant = Opt::closest(&option)
        .filter(|opt| matches!(opt.env, EnvVar::Derived))
        .and_then(Opt::env_var);
    match meant {
        Some(var) => usage(format!(
            "unknown environment variable {key} (did you mean {var}?)"
        )),
        None => usage(format!("unknown environment variable {key}")),
    }
}

/// A variable's values: one per line for repeatable options, but URLs
/// (mirrors) separated by any whitespace, which a URL never contains.
pub fn env_values(opt: &Opt, value: &OsStr) -> Vec<OsString> {
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
