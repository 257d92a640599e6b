//! The example CLI run as a subprocess, the way a container runs its
//! entrypoint: a command with a clean environment, and what a run printed.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cli_path;

/// The CLI with nothing from the host's environment but PATH (no
/// PACKAGE_*, ZIPDEPLOY_*, HOME leaks in) and stdin closed; a test adds
/// what it needs.
pub fn command() -> Command {
    let mut cmd = Command::new(cli_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// What a finished run printed, and how long it took.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Runs `cmd` to the end.
pub fn run(cmd: &mut Command) -> Run {
    let started = Instant::now();
    let output = cmd.output().expect("run zipdeploy");
    Run {
        took: started.elapsed(),
        ..Run::of(output)
    }
}

impl Run {
    /// The run that gave `output` (`took` left at zero).
    pub fn of(output: Output) -> Run {
        Run {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: Duration::ZERO,
        }
    }

    /// Asserts the exit status, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the single `zipdeploy: error: ...` line and returns it.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", self.stderr);
        assert!(
            lines[0].starts_with("zipdeploy: error: "),
            "{:?}",
            self.stderr
        );
        lines[0]
    }

    /// Whether stdout or stderr holds `needle`.
    pub fn output_contains(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }
}
