//! The HTTP exchanges of the fetch stage, run so that a deploy can always be
//! stopped and secrets stay with their origin.
//!
//! - Each request runs on a helper thread of its own and hands the body over
//!   in chunks. The caller's thread waits in [`TICK`]s and calls a heartbeat
//!   between them (the progress callback, so a C callback, a Go context or a
//!   Rust closure can cancel), even while the server sends nothing. Giving up
//!   on an exchange shuts its sockets down (`ureq::Agent::shutdown`), which
//!   ends a read blocked on a stalled server at once; a connect in progress
//!   is left to its own timeout on the helper thread, which then ends.
//! - Redirects are followed here, not by ureq, so that the headers sent and
//!   the proxy used are decided again at every hop: a header goes only to
//!   the origin (scheme, host, port) it was given for, and `NO_PROXY` is
//!   checked against each hop's host.
//! - [`LowSpeed`] is curl's `--speed-limit`/`--speed-time` rule.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use ureq::http::response::Parts;
use ureq::http::StatusCode;
use url::Url;

use crate::error::{Error, NetworkKind, Result, TimeoutKind};
use crate::fetch::{FetchOptions, Hop, Requests};

/// Longest the caller's thread waits for the network before it calls the
/// heartbeat again (and so, about the longest a cancel takes).
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Bytes read from the socket per chunk handed over, by default (see
/// [`open`]).
pub(crate) const CHUNK: usize = 256 * 1024;

/// What the helper thread of an exchange reports.
pub(crate) enum Event {
    /// The next bytes of the body: `buffer[..len]`.
    Data(Vec<u8>, usize),
    /// The body ended.
    End,
    /// Reading the body failed.
    ReadFailed(io::Error),
}

/// What the helper thread sends: first the response head (or why there is
/// none), then body events.
enum Message {
    Head(std::result::Result<Parts, ureq::Error>),
    Body(Event),
}

/// One request in flight on its helper thread.
pub(crate) struct Exchange {
    messages: Receiver<Message>,
    /// Buffers handed back to the helper thread for reuse.
    spare: SyncSender<Vec<u8>>,
    /// This exchange's own agent: shutting it down touches nothing else.
    agent: ureq::Agent,
    /// Bytes read per chunk: the length of every buffer.
    chunk: usize,
}

impl Exchange {
    /// Sends `GET url` with `headers` on a new helper thread; errors name
    /// the URL as `shown`.
    fn start(
        config: &ureq::config::Config,
        url: &Url,
        shown: &str,
        headers: Vec<(String, String)>,
        deadline: Option<Instant>,
        chunk: usize,
    ) -> Result<Exchange> {
        let agent = ureq::Agent::new_with_config(config.clone());
        let (send, messages) = mpsc::sync_channel(4);
        let (spare, spares) = mpsc::sync_channel::<Vec<u8>>(4);
        let worker_agent = agent.clone();
        let target = url.as_str().to_string();
        let spawned = std::thread::Builder::new()
            .name("zipdeploy-http".into())
            .spawn(move || {
                let mut request = worker_agent.get(&target);
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    request = request.config().timeout_global(Some(left)).build();
                }
                let (head, body) = match request.call() {
                    Ok(response) => response.into_parts(),
                    Err(e) => {
                        let _ = send.send(Message::Head(Err(e)));
                        return;
                    }
                };
                if send.send(Message::Head(Ok(head))).is_err() {
                    return;
                }
                let mut reader = body.into_reader();
                loop {
                    let mut buffer = spares.try_recv().unwrap_or_else(|_| vec![0; chunk]);
                    let event = match reader.read(&mut buffer) {
                        Ok(0) => Event::End,
                        Ok(n) => Event::Data(buffer, n),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Event::ReadFailed(e),
                    };
                    let last = !matches!(event, Event::Data(..));
                    if send.send(Message::Body(event)).is_err() || last {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            return Err(Error::Network {
                url: shown.to_string(),
                reason: format!("cannot start a network thread: {e}"),
                kind: NetworkKind::Other,
            });
        }
        Ok(Exchange {
            messages,
            spare,
            agent,
            chunk,
        })
    }

    /// The next message, calling `heartbeat` every [`TICK`] while none
    /// comes. An error from the heartbeat abandons the exchange.
    fn next(&mut self, heartbeat: &mut dyn FnMut() -> Result<()>) -> Result<Message> {
        loop {
            match self.messages.recv_timeout(TICK) {
                Ok(message) => return Ok(message),
                Err(RecvTimeoutError::Timeout) => heartbeat()?,
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Message::Body(Event::ReadFailed(io::Error::other(
                        "the network thread ended unexpectedly",
                    ))))
                }
            }
        }
    }

    /// The next body event; see [`Exchange::next`].
    pub(crate) fn next_body(&mut self, heartbeat: &mut dyn FnMut() -> Result<()>) -> Result<Event> {
        match self.next(heartbeat)? {
            Message::Body(event) => Ok(event),
            Message::Head(_) => Ok(Event::ReadFailed(io::Error::other(
                "a second response head",
            ))),
        }
    }

    /// Gives a buffer back for the next chunk: one it sent, or another one
    /// the bytes were handed on in (grown to a chunk's length if need be).
    pub(crate) fn recycle(&self, mut buffer: Vec<u8>) {
        buffer.resize(self.chunk, 0);
        let _ = self.spare.try_send(buffer);
    }
}

impl Drop for Exchange {
    /// Shuts the exchange's sockets down, so that its helper thread stops
    /// at once even when blocked on a stalled server.
    fn drop(&mut self) {
        self.agent.clone().shutdown();
    }
}

/// Whether a response status is a redirect to follow.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The user headers that may go to `hop`: those given for the origin of the
/// URL fetched (`first`) when `hop` is on it, and those given for `hop`'s
/// origin explicitly.
pub(crate) fn headers_for(hop: &Url, first: &Url, options: &FetchOptions) -> Vec<(String, String)> {
    let origin = hop.origin();
    let mut headers = Vec::new();
    if origin == first.origin() {
        headers.extend(options.headers.iter().cloned());
    }
    headers.extend(
        options
            .origin_headers
            .iter()
            .filter(|(o, _, _)| *o == origin)
            .map(|(_, name, value)| (name.clone(), value.clone())),
    );
    headers
}

/// Sends `GET url`, following redirects (at most
/// [`FetchOptions::max_redirects`], never from https to http), with the
/// user headers each hop's origin may get plus `extra` (e.g. `Range`).
/// Requests to an S3 endpoint get fresh SigV4 headers from `signer`, each
/// hop its own; others the netrc credentials for their own host, if any.
/// The body comes in chunks of up to `chunk` bytes (a few are in flight:
/// smaller chunks for slower connections keep memory down). Returns the
/// exchange and the head of the final response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open(
    requests: &Requests<'_>,
    url: &Url,
    signer: Option<&crate::s3::Signer>,
    options: &FetchOptions,
    extra: &[(String, String)],
    deadline: Option<Instant>,
    chunk: usize,
    heartbeat: &mut dyn FnMut() -> Result<()>,
) -> Result<(Exchange, Parts)> {
    let shown = crate::fetch::redact_url(url);
    let refused = |reason: String| Error::Redirect {
        url: shown.clone(),
        reason,
    };
    let mut hop = url.clone();
    let mut redirects = 0;
    let mut netrc = crate::netrc::Lookup::new(&options.netrc);
    loop {
        let mut headers = headers_for(&hop, url, options);
        headers.extend(extra.iter().cloned());
        match signer {
            Some(signer) => headers.extend(signer.headers_for(&hop)),
            None => headers.extend(netrc.authorization(&hop, &headers)?),
        }
        let Hop { config, proxy } = requests.hop(&hop)?;
        let mut exchange = Exchange::start(&config, &hop, &shown, headers, deadline, chunk)?;
        let head = match exchange.next(heartbeat)? {
            Message::Head(Ok(head)) => head,
            Message::Head(Err(e)) => {
                let err = crate::fetch::map_ureq_error(e, url);
                return Err(match proxy {
                    Some(spec) => via_proxy(err, spec),
                    None => err,
                });
            }
            Message::Body(_) => {
                return Err(Error::Network {
                    url: shown,
                    reason: "no response".into(),
                    kind: NetworkKind::Broken,
                })
            }
        };
        if !is_redirect(head.status) {
            return Ok((exchange, head));
        }
        let Some(location) = head.headers.get("location").and_then(|v| v.to_str().ok()) else {
            return Ok((exchange, head));
        };
        drop(exchange);
        let next = hop
            .join(location.trim())
            .map_err(|e| refused(format!("bad Location: {e}")))?;
        match next.scheme() {
            "https" => {}
            "http" if url.scheme() == "https" => {
                return Err(refused(
                    "redirect from https to a non-https URL refused".into(),
                ))
            }
            "http" => {}
            other => return Err(refused(format!("redirect to unsupported scheme {other:?}"))),
        }
        redirects += 1;
        if redirects > options.max_redirects {
            return Err(refused("too many redirects (or a redirect loop)".into()));
        }
        crate::progress::notify(&options.on_notice, || crate::progress::Notice::Redirect {
            status: head.status.as_u16(),
            from: crate::fetch::redact_url(&hop),
            to: crate::fetch::redact_url(&next),
        });
        hop = next;
    }
}

/// `err` of a request that went through the proxy `spec`: the message
/// names the proxy, and no credential of `spec` survives in it.
fn via_proxy(err: Error, spec: &str) -> Error {
    let shown = crate::proxy::shown_proxy(spec);
    let note = |reason: String| format!("{} (via proxy {shown})", scrub_proxy(&reason, spec));
    match err {
        Error::Network { url, reason, kind } => Error::Network {
            url,
            reason: note(reason),
            kind,
        },
        Error::Timeout { url, what, kind } => Error::Timeout {
            url,
            what: note(what),
            kind,
        },
        Error::Tls { url, reason, kind } => Error::Tls {
            url,
            reason: note(reason),
            kind,
        },
        other => other,
    }
}

/// Removes the user name and password of the proxy URL `spec` from
/// `message`.
fn scrub_proxy(message: &str, spec: &str) -> String {
    let rest = spec.split_once("://").map_or(spec, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message.to_string();
    };
    let mut out = message.to_string();
    for secret in userinfo.split(':').filter(|s| s.len() >= 3) {
        out = out.replace(secret, "***");
    }
    out
}

/// curl's low-speed rule: the transfer fails when fewer than `limit` bytes
/// per second arrive on average over a window of `time`.
pub(crate) struct LowSpeed {
    limit: u64,
    time: Duration,
    window_start: Instant,
    bytes_at_start: u64,
}

impl LowSpeed {
    /// Starts the first window now, at `bytes` received.
    pub(crate) fn new(options: &FetchOptions, bytes: u64) -> LowSpeed {
        LowSpeed {
            limit: options.speed_limit,
            time: options.speed_time,
            window_start: Instant::now(),
            bytes_at_start: bytes,
        }
    }

    /// Checks the rule with `bytes` received so far; a window that ended
    /// fast enough starts the next one.
    pub(crate) fn check(&mut self, bytes: u64, url: &str) -> Result<()> {
        let elapsed = self.window_start.elapsed();
        if self.limit == 0 || elapsed < self.time {
            return Ok(());
        }
        let got = bytes.saturating_sub(self.bytes_at_start);
        let needed = (self.limit as f64 * elapsed.as_secs_f64()) as u64;
        if got < needed {
            return Err(Error::Timeout {
                url: url.to_string(),
                what: format!(
                    "low speed: {got} bytes in {:.1} s, below the limit of {} bytes/s over {} s",
                    elapsed.as_secs_f64(),
                    self.limit,
                    self.time.as_secs_f64()
                ),
                kind: TimeoutKind::LowSpeed,
            });
        }
        self.window_start = Instant::now();
        self.bytes_at_start = bytes;
        Ok(())
    }
}

/// Sleeps for `delay` in [`TICK`]s, calling `heartbeat` after each.
pub(crate) fn pause(delay: Duration, heartbeat: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let end = Instant::now() + delay;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(TICK));
        heartbeat()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_stay_with_their_origin() {
        let first = Url::parse("https://pkg.example/app.zip").unwrap();
        let mirror = Url::parse("https://mirror.example:8443/app.zip").unwrap();
        let options = FetchOptions {
            headers: vec![("PRIVATE-TOKEN".into(), "t1".into())],
            origin_headers: vec![(mirror.origin(), "X-Api-Key".into(), "k2".into())],
            ..FetchOptions::default()
        };
        let same = Url::parse("https://pkg.example:443/other/app.zip").unwrap();
        assert_eq!(
            headers_for(&same, &first, &options),
            vec![("PRIVATE-TOKEN".to_string(), "t1".to_string())]
        );
        let other_port = Url::parse("https://pkg.example:444/app.zip").unwrap();
        assert!(headers_for(&other_port, &first, &options).is_empty());
        let downgraded = Url::parse("http://pkg.example/app.zip").unwrap();
        assert!(headers_for(&downgraded, &first, &options).is_empty());
        assert_eq!(
            headers_for(&mirror, &first, &options),
            vec![("X-Api-Key".to_string(), "k2".to_string())]
        );
    }

    #[test]
    fn low_speed_fails_only_after_a_slow_window() {
        let options = FetchOptions {
            speed_limit: 1000,
            speed_time: Duration::from_millis(200),
            ..FetchOptions::default()
        };
        let mut rule = LowSpeed::new(&options, 0);
        assert!(rule.check(0, "u").is_ok(), "the window has not ended");
        std::thread::sleep(Duration::from_millis(220));
        assert!(rule.check(1000, "u").is_ok(), "fast enough");
        std::thread::sleep(Duration::from_millis(220));
        let err = rule.check(1010, "u").unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("low speed"), "{err}");
        assert!(
            matches!(
                err,
                Error::Timeout {
                    kind: TimeoutKind::LowSpeed,
                    ..
                }
            ),
            "{err:?}"
        );
        let off = FetchOptions {
            speed_limit: 0,
            speed_time: Duration::ZERO,
            ..FetchOptions::default()
        };
        assert!(LowSpeed::new(&off, 0).check(0, "u").is_ok());
    }
}
