//! Parallel ranged download: the tail of a slow download fetched over
//! several connections at once, as download accelerators and S3's own
//! guidance do.
//!
//! A download always starts on one connection. When the body has flowed
//! for a moment ([`PROBE`]), the fetch was waiting for the network rather
//! than the disk, one connection is slow ([`FAST`]) and the rest would
//! still take a while ([`WORTH`]), [`Planner`] splits the rest into parts:
//! the first connection keeps the first part and stops at its end, and a
//! helper thread per other part asks for it with `Range` + `If-Range`,
//! writing it at its offset in the same open file (through a duplicate of
//! the download's handle, never a second open by name).
//!
//! The fetch thread keeps the guarantees of a single connection: it hashes,
//! shows to the tap and announces to the growth (so the streaming
//! extractor) only the contiguous prefix, reading each part back through
//! the download's handle once written; every range response must carry the
//! validator of the first response, so two versions are never mixed; a part
//! that fails (the first connection's own too) is retried alone from where
//! it stopped; and stopping the
//! download stops every helper within a [`crate::http::TICK`].
//!
//! A helper whose request has no answer yet when the first connection
//! reaches its part ([`ANSWER_GRACE`]) does not hold the download up: the
//! first connection, whose response goes on to the end, takes that part on
//! itself ([`Spread::claim`]) and its helper stops without writing a byte.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::{FetchOptions, Requests, Validators};
use crate::http;
use crate::progress::{notify, Notice};

/// How long the first connection runs before the download may spread: long
/// enough to measure its speed.
pub(crate) const PROBE: Duration = Duration::from_millis(300);

/// A single connection this fast is not what limits the download (on
/// loopback or a LAN the disk is): it stays alone.
pub(crate) const FAST: u64 = 128 << 20;

/// Spread only when the rest would take at least this long on one
/// connection: new connections cost round trips.
pub(crate) const WORTH: Duration = Duration::from_secs(1);

/// Bytes a helper's connection hands over at a time: a part's connection
/// is capped well below what larger chunks are for, and each helper keeps a
/// few in flight.
const PART_CHUNK: usize = 64 * 1024;

/// Fewest bytes a connection is given.
pub(crate) const MIN_PART: u64 = 1 << 20;

/// How long the first connection, at the end of its part, waits for the
/// next part's helper to be answered before it brings that part itself: a
/// request that hangs (a server queueing connections beyond its limit)
/// would otherwise hold the whole download up for the stall timeout, per
/// retry, while the first connection's response could go on.
pub(crate) const ANSWER_GRACE: Duration = WORTH;

/// Spread only when the fetch spent at least this share of its time
/// waiting for the network (else the disk or the CPU is the bottleneck,
/// which more connections do not widen).
const NETWORK_BOUND: f64 = 0.5;

/// Decides whether and how the rest of a download is spread.
pub(crate) struct Planner {
    connections: u32,
    started: Instant,
    bytes_at_start: u64,
    /// Time the fetch thread spent waiting for the first connection.
    waited: Duration,
}

impl Planner {
    /// Starts measuring now, at `bytes` received; at most `connections`
    /// in all.
    pub(crate) fn new(connections: u32, bytes: u64) -> Planner {
        Planner {
            connections,
            started: Instant::now(),
            bytes_at_start: bytes,
            waited: Duration::ZERO,
        }
    }

    /// Counts time spent waiting for the network.
    pub(crate) fn waited(&mut self, time: Duration) {
        self.waited += time;
    }

    /// The parts `[start, end)` of `written..total` when spreading pays off
    /// now, the first connection's own first (it is at `written`).
    pub(crate) fn plan(&self, written: u64, total: u64) -> Option<Vec<(u64, u64)>> {
        let elapsed = self.started.elapsed();
        if self.connections < 2 || elapsed < PROBE {
            return None;
        }
        let rate = written.saturating_sub(self.bytes_at_start) as f64 / elapsed.as_secs_f64();
        let waiting = self.waited.as_secs_f64() / elapsed.as_secs_f64();
        let rest = total.saturating_sub(written);
        if rate >= FAST as f64
            || waiting < NETWORK_BOUND
            || (rest as f64) < rate * WORTH.as_secs_f64()
        {
            return None;
        }
        let count = u64::from(self.connections).min(rest / MIN_PART);
        if count < 2 {
            return None;
        }
        let size = rest / count;
        Some(
            (0..count)
                .map(|i| {
                    let start = written + i * size;
                    let end = if i + 1 == count { total } else { start + size };
                    (start, end)
                })
                .collect(),
        )
    }
}

/// Where the parts come from, and what every response must match.
pub(crate) struct Target<'t> {
    pub(crate) url: &'t Url,
    pub(crate) signer: Option<&'t crate::s3::Signer>,
    pub(crate) options: &'t FetchOptions,
    /// The strong validator the first response was served under.
    pub(crate) validator: &'t str,
    /// The package's length.
    pub(crate) total: u64,
    pub(crate) deadline: Option<Instant>,
    /// The download file, named in errors.
    pub(crate) path: &'t Path,
}

/// How a part fetched by a helper stands.
#[derive(Debug)]
pub(crate) enum PartState {
    /// Asking (or asking again) for it.
    Asking,
    /// Waiting to ask again because the server said when to (`429` or
    /// `503` with `Retry-After`): a server that turns more connections away
    /// so, whose connection is not to wait for.
    Deferred,
    /// The server answered with the range: bytes are coming.
    Flowing,
    /// All its bytes are in the file.
    Complete,
    /// Failed for good (retries spent, or not retryable). `refused` when
    /// the server does not serve the range of this version (it ignores
    /// `Range`, or the package changed): the download must not resume.
    Failed { error: Error, refused: bool },
    /// The error was taken by the fetch thread.
    Reported,
    /// Taken on by the first connection before its helper was answered:
    /// the helper stops, and writes nothing of it.
    Claimed,
}

/// A part of the download fetched by a helper.
#[derive(Debug)]
struct Part {
    start: u64,
    end: u64,
    /// Bytes of it written, from its start.
    done: u64,
    state: PartState,
}

/// The parts fetched by helpers, shared with the fetch thread.
pub(crate) struct Spread {
    parts: Mutex<Vec<Part>>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Spread {
    /// The helpers' parts: every part of `plan` but the first connection's.
    pub(crate) fn new(plan: &[(u64, u64)]) -> Spread {
        let parts = plan
            .iter()
            .skip(1)
            .map(|&(start, end)| Part {
                start,
                end,
                done: 0,
                state: PartState::Asking,
            })
            .collect();
        Spread {
            parts: Mutex::new(parts),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Part>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many parts helpers fetch.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Tells every helper to stop (they do within a [`http::TICK`]).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Bytes the helpers wrote beyond `prefix` (the contiguous bytes the
    /// fetch thread has taken in).
    pub(crate) fn beyond(&self, prefix: u64) -> u64 {
        self.lock()
            .iter()
            .map(|p| (p.start + p.done).saturating_sub(prefix.max(p.start)))
            .sum()
    }

    /// Where part `index` stands: its range, the end of what is written of
    /// it, and whether it is complete; or its failure (taken once).
    pub(crate) fn progress(&self, index: usize) -> Result<(u64, bool), (Error, bool)> {
        let mut parts = self.lock();
        let part = &mut parts[index];
        match std::mem::replace(&mut part.state, PartState::Reported) {
            PartState::Failed { error, refused } => Err((error, refused)),
            state => {
                let complete = matches!(state, PartState::Complete);
                part.state = state;
                Ok((part.start + part.done, complete))
            }
        }
    }

    /// Whether part `index` is coming: `Some(true)` once the server
    /// answered it with the range, `Some(false)` when it failed or is not
    /// its helper's any more; `None` while it is asked for.
    pub(crate) fn answered(&self, index: usize) -> Option<bool> {
        match self.lock().get(index).map(|p| &p.state) {
            Some(PartState::Asking) => None,
            Some(
                PartState::Failed { .. }
                | PartState::Reported
                | PartState::Deferred
                | PartState::Claimed,
            )
            | None => Some(false),
            Some(PartState::Flowing | PartState::Complete) => Some(true),
        }
    }

    /// Takes part `index` from its helper, if the server has not answered
    /// the helper yet: the caller brings its bytes instead. Returns the
    /// part's end, or `None` when the part is (or was) coming from its
    /// helper, or has failed.
    pub(crate) fn claim(&self, index: usize) -> Option<u64> {
        let mut parts = self.lock();
        let part = parts.get_mut(index)?;
        if !matches!(part.state, PartState::Asking) {
            return None;
        }
        part.state = PartState::Claimed;
        // What an earlier answer brought is written again by the claimer.
        part.done = 0;
        let end = part.end;
        drop(parts);
        self.changed.notify_all();
        Some(end)
    }

    fn claimed(&self, index: usize) -> bool {
        matches!(self.lock()[index].state, PartState::Claimed)
    }

    /// Sets the state of part `index` as its helper sees it, unless the
    /// part was claimed; returns whether it was set.
    fn settle(&self, index: usize, state: PartState) -> bool {
        let mut parts = self.lock();
        let part = &mut parts[index];
        if matches!(part.state, PartState::Claimed) {
            return false;
        }
        part.state = state;
        drop(parts);
        self.changed.notify_all();
        true
    }

    /// Whether a part failed for good.
    pub(crate) fn any_failed(&self) -> bool {
        self.lock()
            .iter()
            .any(|p| matches!(p.state, PartState::Failed { .. } | PartState::Reported))
    }

    /// Whether a part failed for good, or the server put it off: the first
    /// connection then goes on alone rather than wait for it.
    pub(crate) fn any_declined(&self) -> bool {
        self.lock().iter().any(|p| {
            matches!(
                p.state,
                PartState::Failed { .. } | PartState::Reported | PartState::Deferred
            )
        })
    }

    /// Records that part `index` cannot be fetched.
    pub(crate) fn fail(&self, index: usize, error: Error) {
        self.update(index, |p| {
            p.state = PartState::Failed {
                error,
                refused: false,
            }
        });
    }

    /// Waits, at most `timeout`, while part `index` is being asked for.
    pub(crate) fn wait_answer(&self, index: usize, timeout: Duration) {
        let parts = self.lock();
        if matches!(parts.get(index).map(|p| &p.state), Some(PartState::Asking)) && !self.stopped()
        {
            let _ = self
                .changed
                .wait_timeout(parts, timeout)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits, at most `timeout`, while part `index` is still written up to
    /// `upto` and neither complete nor failed.
    pub(crate) fn wait_part(&self, index: usize, upto: u64, timeout: Duration) {
        let parts = self.lock();
        let part = &parts[index];
        let waiting = matches!(
            part.state,
            PartState::Asking | PartState::Deferred | PartState::Flowing
        );
        if waiting && part.start + part.done == upto && !self.stopped() {
            let _ = self
                .changed
                .wait_timeout(parts, timeout)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Part)) {
        change(&mut self.lock()[index]);
        self.changed.notify_all();
    }

    /// The range of part `index` still to fetch.
    fn missing(&self, index: usize) -> (u64, u64) {
        let parts = self.lock();
        (parts[index].start + parts[index].done, parts[index].end)
    }
}

/// Fetches part `index` of `spread` into `file` (a duplicate of the
/// download's handle) at its offset, retrying it alone from where it
/// stopped; records how it ends in `spread`.
pub(crate) fn fetch_part(target: &Target<'_>, spread: &Spread, index: usize, file: &File) {
    let options = target.options;
    let shown = crate::fetch::redact_url(target.url);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (error, refused, asked_delay) =
            match fetch_part_once(target, spread, index, file, &shown) {
                Ok(()) => {
                    spread.settle(index, PartState::Complete);
                    return;
                }
                Err(_) if spread.stopped() || spread.claimed(index) => return,
                Err(Refusal::Refused(error)) => (error, true, None),
                Err(Refusal::Failed(error)) => (error, false, None),
                Err(Refusal::Later(error, delay)) => (error, false, Some(delay)),
            };
        let now = Instant::now();
        let late = target.deadline.is_some_and(|d| now >= d);
        if refused || !error.is_transient() || attempts > options.retries || late {
            spread.settle(index, PartState::Failed { error, refused });
            return;
        }
        let state = match asked_delay {
            Some(_) => PartState::Deferred,
            None => PartState::Asking,
        };
        if !spread.settle(index, state) {
            return;
        }
        let mut delay = asked_delay.unwrap_or_else(|| crate::fetch::backoff(options, attempts));
        if let Some(d) = target.deadline {
            delay = delay.min(d.saturating_duration_since(now));
        }
        notify(&options.on_notice, || Notice::Retry {
            url: shown.clone(),
            attempt: attempts,
            retries: options.retries,
            delay,
            error: error.to_string(),
        });
        if http::pause(delay, &mut || halt(spread, index)).is_err() {
            return;
        }
    }
}

/// Why one request for a part did not bring all of it.
pub(crate) enum Refusal {
    /// The server does not serve this range of this version.
    Refused(Error),
    /// Anything else (retried when transient).
    Failed(Error),
    /// A status the server asked to retry after a delay (`Retry-After`).
    Later(Error, Duration),
}

/// The heartbeat of the helper of part `index`: stops it when the download
/// stops, or when its part was claimed.
fn halt(spread: &Spread, index: usize) -> Result<()> {
    match spread.stopped() || spread.claimed(index) {
        true => Err(Error::Cancelled),
        false => Ok(()),
    }
}

/// Asks for bytes `[start, end)` of the version served under
/// `target.validator`, and checks that the answer is exactly those bytes of
/// that version; `heartbeat` is called every [`http::TICK`] while waiting.
pub(crate) fn ask(
    target: &Target<'_>,
    start: u64,
    end: u64,
    chunk: usize,
    heartbeat: &mut dyn FnMut() -> Result<()>,
) -> std::result::Result<http::Exchange, Refusal> {
    let options = target.options;
    let shown = crate::fetch::redact_url(target.url);
    let extra = [
        ("Range".to_string(), format!("bytes={start}-{}", end - 1)),
        ("If-Range".to_string(), target.validator.to_string()),
    ];
    let requests = Requests::new(target.url, options);
    let (exchange, head) = http::open(
        &requests,
        target.url,
        target.signer,
        options,
        &extra,
        target.deadline,
        chunk,
        heartbeat,
    )
    .map_err(Refusal::Failed)?;
    let header = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let refused = |reason: String| {
        Refusal::Refused(Error::Network {
            url: shown.clone(),
            reason,
            kind: crate::NetworkKind::Protocol,
        })
    };
    let validators = Validators::new(header("etag"), header("last-modified"));
    match head.status.as_u16() {
        206 => {}
        200 => {
            return Err(refused(format!(
                "server ignored the range of bytes {start}-{}",
                end - 1
            )))
        }
        status => {
            let error = Error::HttpStatus {
                url: shown.clone(),
                status,
            };
            let later = header("retry-after")
                .and_then(|v| crate::retry_after::delay(&v, std::time::SystemTime::now()));
            return Err(match later {
                Some(delay) => Refusal::Later(error, delay),
                None => Refusal::Failed(error),
            });
        }
    }
    if !validators.names(target.validator) {
        return Err(refused(format!(
            "bytes {start}-{} came from another version of the package",
            end - 1
        )));
    }
    let range = header("content-range").unwrap_or_default();
    if parse_content_range(&range) != Some((start, end - 1, target.total)) {
        return Err(refused(format!(
            "asked for bytes {start}-{}/{}, got {range:?}",
            end - 1,
            target.total
        )));
    }
    Ok(exchange)
}

fn fetch_part_once(
    target: &Target<'_>,
    spread: &Spread,
    index: usize,
    file: &File,
    shown: &str,
) -> std::result::Result<(), Refusal> {
    let options = target.options;
    let (start, end) = spread.missing(index);
    let mut exchange = ask(target, start, end, PART_CHUNK, &mut || halt(spread, index))?;
    if !spread.settle(index, PartState::Flowing) {
        return Err(Refusal::Failed(Error::Cancelled));
    }
    let mut speed = http::LowSpeed::new(options, 0);
    let mut at = start;
    loop {
        let got = at - start;
        let event = exchange
            .next_body(&mut || {
                halt(spread, index)?;
                speed.check(got, shown)
            })
            .map_err(Refusal::Failed)?;
        let (buffer, n) = match event {
            http::Event::Data(buffer, n) => (buffer, n),
            http::Event::End => break,
            http::Event::ReadFailed(e) => {
                return Err(Refusal::Failed(crate::fetch::body_read_error(
                    e,
                    target.url,
                    shown,
                    options,
                    &format!("at byte {at} of a range"),
                )))
            }
        };
        if spread.stopped() {
            return Err(Refusal::Failed(Error::Cancelled));
        }
        // Never past the part: the next one is another connection's.
        let keep = (n as u64).min(end - at) as usize;
        file.write_all_at(&buffer[..keep], at)
            .map_err(|e| Refusal::Failed(Error::io("write", target.path)(e)))?;
        at += keep as u64;
        exchange.recycle(buffer);
        spread.update(index, |p| p.done = at - p.start);
        speed.check(at - start, shown).map_err(Refusal::Failed)?;
        if at == end {
            return Ok(());
        }
    }
    Err(Refusal::Failed(Error::Truncated {
        url: shown.to_string(),
        received: at,
        expected: end,
    }))
}

/// `bytes 100-199/200` → `Some((100, 199, 200))`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parts() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, 200))
        );
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("bytes 0-1/*"), None);
    }

    #[test]
    fn only_a_part_not_yet_answered_is_claimed_and_its_helper_then_writes_nothing() {
        let spread = Spread::new(&[(0, 10), (10, 20), (20, 30), (30, 40)]);
        // Not answered: claimed, with its end; its helper is told so.
        assert_eq!(spread.answered(0), None);
        assert_eq!(spread.claim(0), Some(20));
        assert!(halt(&spread, 0).is_err());
        assert!(halt(&spread, 1).is_ok());
        assert_eq!(spread.answered(0), Some(false));
        // An answer that comes after the claim changes nothing.
        assert!(!spread.settle(0, PartState::Flowing));
        assert!(!spread.settle(0, PartState::Asking));
        assert!(matches!(spread.lock()[0].state, PartState::Claimed));
        assert!(!spread.any_declined() && !spread.any_failed());
        // Answered (or failed) parts stay their helpers'.
        assert!(spread.settle(1, PartState::Flowing));
        assert_eq!(spread.claim(1), None);
        assert_eq!(spread.answered(1), Some(true));
        spread.fail(2, Error::Cancelled);
        assert_eq!(spread.claim(2), None);
        assert_eq!(spread.claim(3), None, "no such part");
    }

    #[test]
    fn a_plan_covers_the_rest_in_order() {
        let mut planner = Planner::new(4, 0);
        planner.started -= PROBE;
        planner.waited(PROBE);
        // 1 MiB in the probe (about 3 MiB/s): 60 MiB would take 20 s.
        let plan = planner.plan(1 << 20, 61 << 20).unwrap();
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[0].0, 1 << 20);
        assert_eq!(plan[3].1, 61 << 20);
        assert!(plan.windows(2).all(|w| w[0].1 == w[1].0), "{plan:?}");
    }

    #[test]
    fn no_plan_when_spreading_cannot_pay() {
        let mut planner = Planner::new(4, 0);
        planner.started -= PROBE;
        assert!(
            planner.plan(1 << 20, 61 << 20).is_none(),
            "never waited for the network"
        );
        planner.waited(PROBE);
        assert!(
            planner.plan(1 << 20, (1 << 20) + 1000).is_none(),
            "little left"
        );
        assert!(
            planner.plan(1 << 30, 8 << 30).is_none(),
            "a fast connection"
        );
        assert!(
            Planner::new(1, 0).plan(1 << 20, 61 << 20).is_none(),
            "one connection"
        );
    }
}
