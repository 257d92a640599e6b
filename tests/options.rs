//! The options value apart from the run: shortcuts compose with whole
//! values, one value serves many deploys, invalid settings are refused in
//! one place before anything is touched, and locations may be given parsed
//! or not.

mod common;
use common::*;

use std::time::{Duration, Instant};

use zipdeploy::{Deploy, DeployOptions, Error, FetchOptions, Source};

/// Network options that give up at once, as a test wants.
fn no_retries() -> FetchOptions {
    FetchOptions {
        retries: 0,
        ..FetchOptions::default()
    }
}

#[test]
fn shortcuts_given_before_fetch_options_are_kept() {
    let pkg = app_zip("1");
    let served = pkg.clone();
    // Serves the package only to requests carrying the token.
    let server = TestServer::start(move |req, _| match req.header("X-Token") {
        Some("t0ken") => Reply::ok(served.clone()),
        _ => Reply::status(403),
    });
    let tmp = tempfile::tempdir().unwrap();
    let report = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .header("X-Token", "t0ken")
        .max_download(1 << 20)
        .fetch_options(no_retries())
        .sha256(&sha(&pkg))
        .unwrap()
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
}

#[test]
fn a_stall_timeout_given_before_fetch_options_still_applies() {
    let pkg = app_zip("1");
    let server = TestServer::start(move |_, _| {
        Reply::ok(pkg.clone()).fault(Fault::StallAfter(100, Duration::from_secs(20)))
    });
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .stall_timeout(Duration::from_millis(300))
        .fetch_options(no_retries())
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // The default stall timeout is 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_builder_shows_what_it_composed() {
    let deploy = Deploy::new("https://example.com/app.zip")
        .unwrap()
        .timeout(Duration::from_secs(7))
        .retries(9)
        .header("A", "1")
        .fetch_options(FetchOptions {
            retries: 1,
            headers: vec![("B".into(), "2".into())],
            ..FetchOptions::default()
        })
        .fetch_options(FetchOptions::default())
        .connect_timeout(Duration::from_secs(3));
    let fetch = &deploy.options().fetch;
    assert_eq!(fetch.timeout, Some(Duration::from_secs(7)));
    assert_eq!(fetch.retries, 9);
    assert_eq!(fetch.connect_timeout, Duration::from_secs(3));
    // The last whole value replaced the first one's headers; the shortcut's
    // header stays.
    let names: Vec<&str> = fetch.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["A"]);
}

#[test]
fn one_options_value_serves_many_deploys() {
    let pkg = app_zip("1");
    let server = TestServer::serving(pkg.clone());
    let tmp = tempfile::tempdir().unwrap();
    let mut options = DeployOptions::default();
    options.fetch.retries = 0;
    options.keep = 0;
    options.sha256 = Some(sha(&pkg).parse().unwrap());
    options.cache = Some(tmp.path().join("cache"));
    for name in ["a", "b"] {
        let report = Deploy::with_options(&server.url("/app.zip"), options.clone())
            .unwrap()
            .dest(tmp.path().join(name))
            .run()
            .unwrap();
        assert_eq!(report.cache_hit, name == "b");
        assert!(tmp.path().join(name).join("index.php").is_file());
    }
    // One download: the second deploy used the cache the options name.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_invalid_header_is_refused_before_anything_is_touched() {
    let server = TestServer::serving(app_zip("1"));
    let tmp = tempfile::tempdir().unwrap();
    let err = Deploy::new(&server.url("/app.zip"))
        .unwrap()
        .fetch_options(no_retries())
        .header("Bad Name", "s3cret-value")
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("\"Bad Name\""), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(server.requests().is_empty());
    assert!(
        names_in(tmp.path()).is_empty(),
        "{:?}",
        names_in(tmp.path())
    );
}

#[test]
fn a_zero_stall_timeout_is_a_configuration_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = DeployOptions::default();
    options.fetch.stall_timeout = Duration::ZERO;
    let err = Deploy::with_options("https://127.0.0.1:9/app.zip", options)
        .unwrap()
        .dest(tmp.path().join("app"))
        .run()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(why) if why.contains("stall timeout")),
        "{err:?}"
    );
    assert!(names_in(tmp.path()).is_empty());
}

/// Serves `pkg` only at /mirror.zip (app.zip is missing) and its digest
/// at /app.zip.sha256.
fn mirror_and_sidecar_server(pkg: &[u8]) -> TestServer {
    let pkg = pkg.to_vec();
    TestServer::start(move |req, _| match req.path.as_str() {
        "/mirror.zip" => Reply::ok(pkg.clone()),
        "/app.zip.sha256" => Reply::ok(format!("{}  app.zip\n", sha(&pkg))),
        _ => Reply::status(404),
    })
}

#[test]
fn locations_may_be_given_parsed_or_not() {
    let pkg = app_zip("1");
    let server = mirror_and_sidecar_server(&pkg);
    let tmp = tempfile::tempdir().unwrap();
    let main = Source::parse(&server.url("/app.zip")).unwrap();
    let report = Deploy::new(main)
        .unwrap()
        .mirror(Source::parse(&server.url("/mirror.zip")).unwrap())
        .unwrap()
        .sha256_from(&server.url("/app.zip.sha256"))
        .unwrap()
        .fetch_options(no_retries())
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
    assert_eq!(report.mirrors_skipped.len(), 1);
}

#[test]
#[allow(deprecated)]
fn the_deprecated_source_twins_still_work() {
    let pkg = app_zip("1");
    let server = mirror_and_sidecar_server(&pkg);
    let tmp = tempfile::tempdir().unwrap();
    let parse = |path: &str| Source::parse(&server.url(path)).unwrap();
    let deploy = Deploy::from_source(parse("/app.zip"))
        .mirror_source(parse("/mirror.zip"))
        .sha256_from_source(parse("/app.zip.sha256"))
        .minisign_signature_source(parse("/app.zip.minisig"));
    assert_eq!(deploy.options().mirrors, [parse("/mirror.zip")]);
    assert_eq!(
        deploy.options().minisign_signature,
        Some(parse("/app.zip.minisig"))
    );
    let report = deploy
        .fetch_options(no_retries())
        .dest(tmp.path().join("app"))
        .run()
        .unwrap();
    assert_eq!(report.digest.to_hex(), sha(&pkg));
}

#[test]
fn any_borrowed_text_is_a_location() {
    let text = String::from("https://example.com/app.zip");
    let cow = std::borrow::Cow::Borrowed(text.as_str());
    for deploy in [
        Deploy::new(text.as_str()),
        Deploy::new(&text),
        Deploy::new(&cow),
        Deploy::new(Source::parse(&text).unwrap()),
    ] {
        assert_eq!(deploy.unwrap().options().mirrors.len(), 0);
    }
    assert!(Deploy::new("ftp://example.com/app.zip").is_err());
}
