//! Child processes: the `--init` script, and COMMAND exec'd in DEST.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use zipdeploy::Error;

use crate::failure::Failure;
use crate::secrets::ChildEnv;
use crate::signals::stop_signal;

/// Runs `sh SCRIPT` in the staged tree. Its stdout goes to our stderr so
/// stdout stays clean for `--json`; stdin is closed so it cannot hang.
pub fn run_init(staged: &Path, script: &Path, env: &ChildEnv) -> Result<(), String> {
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
pub fn wait_unless_stopped(mut child: Child) -> io::Result<ExitStatus> {
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

pub fn describe_failure(status: ExitStatus) -> Option<String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exited with status {code}")),
        (None, Some(signal)) => Some(format!("was killed by signal {signal}")),
        (None, None) => Some(format!("failed ({status})")),
    }
}

/// Replaces this process with COMMAND, in `dir`; returns only on failure.
pub fn exec_in(dir: &Path, program: &OsStr, args: &[OsString], env: &ChildEnv) -> Failure {
    if let Err(source) = std::env::set_current_dir(dir) {
        return Failure::Deploy(Error::Io {
            op: "enter",
            path: dir.to_path_buf(),
            source,
        });
    }
    let _ = io::stdout().flush();
    // The report written just before may have blocked on a full pipe (a
    // supervisor not reading): a stop signal that came meanwhile still
    // keeps COMMAND from starting. `exec` resets the handlers, so a signal
    // caught and not checked here would be lost.
    if let Some(signal) = stop_signal() {
        return Failure::Stopped {
            signal,
            deployed: true,
        };
    }
    let mut command = Command::new(program);
    env.apply(&mut command);
    let error = command.args(args).exec();
    Failure::Exec {
        program: program.to_string_lossy().into_owned(),
        error,
    }
}
