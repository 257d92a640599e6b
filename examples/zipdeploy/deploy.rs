//! Deploying: options onto the library's builder.

use std::ops::ControlFlow;
use std::sync::Arc;

use zipdeploy::{Deploy, Error, FetchOptions, Limits, Notice, NoticeFn, Report};

use crate::child::run_init;
use crate::config::Cli;
use crate::failure::Failure;
use crate::progress::{Console, SharedConsole};
use crate::signals::stop_signal;
use crate::values::usage;

/// Runs the deploy, with the progress meter and the stop signals watched.
pub fn install(cli: &Cli) -> Result<Report, Failure> {
    let console = Console::shared(cli);
    // The library calls this at least every 100 ms, also while the server
    // is silent: a stop signal cancels the deploy within that.
    let deploy = configure(cli, Deploy::new(&cli.urls[0])?, &console)?.progress(|p| {
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

pub fn configure<'a>(
    cli: &Cli,
    deploy: Deploy<'a>,
    console: &SharedConsole,
) -> Result<Deploy<'a>, Error> {
    let mut deploy = deploy
        .dest(&cli.dest)
        .fetch_options(fetch_options(cli, console))
        .limits(limits(cli))
        .durable(cli.sync);
    if let Some(hex) = &cli.sha256 {
        deploy = deploy.sha256(hex)?;
    }
    if let Some(path) = &cli.cacert {
        deploy = deploy.cacert_file(path)?;
    }
    if let Some(netrc) = &cli.netrc {
        deploy = deploy.netrc(netrc.clone());
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
        let console = console.clone();
        deploy = deploy.before_activate(move |staged| {
            // The script writes to stderr too: not onto the meter's line.
            Console::lock(&console).end_line();
            run_init(staged, &script, &env)
        });
    }
    Ok(deploy)
}

pub fn fetch_options(cli: &Cli, console: &SharedConsole) -> FetchOptions {
    let defaults = FetchOptions::default();
    let on_notice = cli.verbose.then(|| {
        let console = console.clone();
        Arc::new(move |notice: &Notice| Console::lock(&console).note(&notice.to_string()))
            as NoticeFn
    });
    FetchOptions {
        timeout: cli.timeout.or(defaults.timeout),
        connect_timeout: cli.connect_timeout.unwrap_or(defaults.connect_timeout),
        stall_timeout: cli.stall_timeout.unwrap_or(defaults.stall_timeout),
        on_notice,
        retries: cli.retries.unwrap_or(defaults.retries),
        connections: cli.connections.unwrap_or(defaults.connections),
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

pub fn limits(cli: &Cli) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_total_size: cli.max_total_size.unwrap_or(defaults.max_total_size),
        max_entries: cli.max_entries.unwrap_or(defaults.max_entries),
        ..defaults
    }
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
