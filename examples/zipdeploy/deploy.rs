//! Deploying: the parsed options, with the console and the init script,
//! onto the library's builder.

use std::ops::ControlFlow;
use std::sync::Arc;

use zipdeploy::{Deploy, Notice, NoticeFn, Report, Source};

use crate::child::run_init;
use crate::config::Cli;
use crate::failure::Failure;
use crate::progress::Console;
use crate::signals::stop_signal;
use crate::values::usage;

/// Runs the deploy of `source`, with the progress meter and the stop
/// signals watched.
pub fn install(cli: &Cli, source: &Source) -> Result<Report, Failure> {
    let console = Console::shared(cli);
    let mut options = cli.options.clone();
    if cli.verbose {
        let console = console.clone();
        let note = move |notice: &Notice| Console::lock(&console).note(&notice.to_string());
        options.fetch.on_notice = Some(Arc::new(note) as NoticeFn);
    }
    let mut deploy = Deploy::with_options(source, options)?.dest(&cli.dest);
    if let Some(script) = cli.init.clone() {
        let env = cli.child_env.clone();
        let console = console.clone();
        deploy = deploy.before_activate(move |staged| {
            // The script writes to stderr too: not onto the meter's line.
            Console::lock(&console).end_line();
            run_init(staged, &script, &env)
        });
    }
    // The library calls this at least every 100 ms, also while the server
    // is silent: a stop signal cancels the deploy within that.
    let deploy = deploy.progress(|p| {
        if stop_signal().is_some() {
            return ControlFlow::Break(());
        }
        Console::lock(&console).progress(p);
        ControlFlow::Continue(())
    });
    let result = deploy.run();
    let mut console = Console::lock(&console);
    console.end_line();
    let report = result?;
    if cli.verbose {
        for why in &report.mirrors_skipped {
            console.note(&format!("mirror skipped: {why}"));
        }
        if let Some(why) = &report.stream_fallback {
            console.note(&format!(
                "extracted after the download instead of during it: {why}"
            ));
        }
    }
    Ok(report)
}

/// Development mode: no package, the tree in DEST (e.g. a mount) is used as is.
pub fn use_mounted_tree(cli: &Cli) -> Result<(), Failure> {
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
