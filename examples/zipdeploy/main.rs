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
//! logic lives in the library; this example only maps options onto
//! [`zipdeploy::Deploy`] and reports the outcome, one module per concern.
#![forbid(unsafe_code)]

mod child;
mod config;
mod deploy;
mod failure;
mod given;
mod help;
mod json;
mod options;
mod progress;
mod report;
mod secrets;
mod signals;
mod values;

use std::ffi::OsString;
use std::process::ExitCode;

use child::exec_in;
use config::{json_requested, Cli, Mode, Parsed};
use deploy::{install, use_mounted_tree};
use failure::{fail, Failure};
use help::help_text;
use report::{announce, announce_rollback, show_status};
use signals::{catch_stop_signals, stop_signal};

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
    let workdir = match (cli.mode, &cli.source) {
        (Mode::Status, _) => return show_status(cli),
        (Mode::Rollback, _) => {
            // As for a deploy: a stop signal ends a wait for a deploy's
            // lock (as PID 1, an unhandled one would be dropped), and
            // COMMAND is not started after one.
            catch_stop_signals()?;
            let mut waiting = || match stop_signal() {
                Some(_) => Err(zipdeploy::Error::Cancelled),
                None => Ok(()),
            };
            let result =
                zipdeploy::status::rollback_with(&cli.dest, cli.options.durable, &mut waiting);
            if let Some(signal) = stop_signal() {
                return Err(Failure::Stopped {
                    signal,
                    deployed: result.is_ok(),
                });
            }
            let rollback = result?;
            announce_rollback(cli, &rollback);
            rollback.status.dest
        }
        (Mode::Deploy, Some(source)) => {
            catch_stop_signals()?;
            let result = install(cli, source);
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
        (Mode::Deploy, None) => {
            use_mounted_tree(cli)?;
            cli.dest.clone()
        }
    };
    match cli.command.split_first() {
        Some((program, args)) => Err(exec_in(&workdir, program, args, &cli.child_env)),
        None => Ok(0),
    }
}
