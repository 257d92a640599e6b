//! Failures: why zipdeploy stops without exec'ing COMMAND, and how it says so.

use std::fmt;
use std::io;
use std::process::ExitCode;

use zipdeploy::{Error, ErrorClass};

use crate::json::JsonObject;

/// Why zipdeploy stops without exec'ing COMMAND.
pub enum Failure {
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
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Deploy(err) => err.class() as u8,
            Failure::Stopped { signal, .. } => 128 + signal,
            Failure::Exec { error, .. } if error.kind() == io::ErrorKind::NotFound => 127,
            Failure::Exec { .. } => 126,
        }
    }

    pub fn to_json(&self) -> String {
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

pub fn class_name(class: ErrorClass) -> &'static str {
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
pub fn fail(failure: &Failure, json: bool) -> ExitCode {
    if json {
        println!("{}", failure.to_json());
    }
    eprintln!("zipdeploy: error: {failure}");
    ExitCode::from(failure.exit_code())
}
