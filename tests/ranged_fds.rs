//! A download spread over several connections when the process is out of
//! file descriptors: alone in its test binary, since it lowers the
//! process's limit.

mod common;

use std::ops::ControlFlow;
use std::time::Duration;

use common::*;
use rustix::process::{getrlimit, setrlimit, Resource};
use zipdeploy::fetch::{fetch_to_file, FetchOptions};
use zipdeploy::progress::Progress;
use zipdeploy::{Sha256Digest, Source};

/// File descriptors open in this process now, plus the one that counts
/// them.
fn open_fds_and_one() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn no_descriptor_left_for_more_connections_leaves_the_first_to_go_on_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = noise_package(&noise(6 << 20, 7), "v1");
    // About 3 MB/s per connection: the rest would be spread.
    let server = {
        let zip = zip.clone();
        TestServer::start(move |req, _| {
            Reply::file_with_ranges(req, &zip, "\"v1\"")
                .fault(Fault::Trickle(64 * 1024, Duration::from_millis(20)))
        })
    };
    let out = tmp.path().join("out.zip");
    let limit = getrlimit(Resource::Nofile);
    let mut lowered = false;
    // Once the body flows, the process may open one file more: not enough
    // for a second connection.
    let mut progress = |p: &Progress| {
        if p.bytes > 0 && !lowered {
            lowered = true;
            let current = Some(open_fds_and_one());
            setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit { current, ..limit },
            )
            .unwrap();
        }
        ControlFlow::Continue(())
    };
    let options = FetchOptions {
        connections: 4,
        ..FetchOptions::default()
    };
    let fetched = fetch_to_file(
        &Source::parse(&server.url("/app.zip")).unwrap(),
        &out,
        &options,
        Some(&mut progress),
    );
    setrlimit(Resource::Nofile, limit).unwrap();
    let fetched = fetched.unwrap();
    assert_eq!(fetched.digest, Sha256Digest::of(&zip));
    assert_eq!(read(&out), zip);
    // The first connection brought the rest (never started over).
    let whole = server
        .requests()
        .iter()
        .filter(|r| r.header("range").is_none())
        .count();
    assert_eq!(whole, 1, "{:?}", server.requests());
}
