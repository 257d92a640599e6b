//! Stop signals: SIGTERM, SIGINT and SIGHUP cancel a deploy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use zipdeploy::Error;

use crate::failure::Failure;

/// The stop signal received during the deploy; 0 while none came.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by the first stop signal: a second one exits at once.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Makes SIGTERM, SIGINT and SIGHUP cancel the deploy: the progress callback
/// sees the flag within 100 ms (the library calls it as a heartbeat even
/// while a server stalls), the library removes its work files and leaves
/// DEST as it was, and zipdeploy exits with 128 + the signal. This matters
/// most as PID 1 of a container, where a signal without a handler is simply
/// dropped and `docker stop` would end in SIGKILL. A second signal exits at
/// once (the next run cleans up what is left). `exec` resets caught signals
/// to their defaults, so COMMAND handles its signals itself.
pub fn catch_stop_signals() -> Result<(), Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        // Registered first, so it runs before the flag is set below.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, &STOPPING)
            .and_then(|_| signal_hook::flag::register(signal, &STOPPING))
            .and_then(|_| signal_hook::flag::register_usize(signal, &STOP_SIGNAL, signal as usize))
            .map_err(|e| {
                Failure::Deploy(Error::Config(format!("cannot handle signal {signal}: {e}")))
            })?;
    }
    Ok(())
}

/// The stop signal received, if any.
pub fn stop_signal() -> Option<u8> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => u8::try_from(signal).ok(),
    }
}
