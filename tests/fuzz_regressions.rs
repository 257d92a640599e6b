//! Inputs kept from fuzzing (`tests/fuzz/`, see its README): every archive
//! is extracted or refused by name — no panic, no write outside the
//! destination — and every location and digest parses or is refused.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{snapshot, Fault, Reply, TestServer};
use zipdeploy::extract::{extract_archive, Limits};
use zipdeploy::{Deploy, Sha256Digest, Source};

fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "README.md")
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn kept_archives_extract_or_are_refused_by_name() {
    let archives = inputs("extract");
    assert!(archives.len() >= 20, "only {} kept inputs", archives.len());
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_total_size: 64 << 20,
        ..Limits::default()
    };
    let (mut extracted, mut refused) = (0, 0);
    for (i, (name, bytes)) in archives.iter().enumerate() {
        let root = tmp.path().join(i.to_string());
        std::fs::create_dir(&root).unwrap();
        let archive = root.join("input.zip");
        std::fs::write(&archive, bytes).unwrap();
        match extract_archive(&archive, &root.join("out"), &limits, None) {
            Ok(_) => extracted += 1,
            Err(e) => {
                refused += 1;
                assert!((50..80).contains(&e.code()), "{name}: unexpected {e}");
                assert!(!e.to_string().contains('\n'), "{name}: {e}");
            }
        }
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.retain(|n| n != "input.zip" && n != "out");
        assert!(names.is_empty(), "{name}: wrote outside: {names:?}");
    }
    eprintln!("{extracted} extracted, {refused} refused");
}

/// The same inputs deployed over HTTP, extracted while they stream in (the
/// walker, its window and the workers' inflater see every odd layout the
/// fuzzer kept), must agree exactly with deploying them from a local file:
/// the same tree, or the same error.
#[test]
fn kept_archives_streamed_agree_with_extracting_the_whole_file() {
    let body = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let body = body.clone();
        TestServer::start(move |_, _| {
            let body = body.lock().unwrap().clone();
            Reply::ok(body).fault(Fault::Trickle(64, Duration::from_micros(50)))
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_total_size: 64 << 20,
        ..Limits::default()
    };
    let mut streamed_ok = 0;
    for (i, (name, bytes)) in inputs("extract").iter().enumerate() {
        let root = tmp.path().join(i.to_string());
        std::fs::create_dir_all(root.join("net")).unwrap();
        let pkg = root.join("input.zip");
        std::fs::write(&pkg, bytes).unwrap();
        let local = Deploy::new(pkg.to_str().unwrap())
            .unwrap()
            .dest(root.join("app"))
            .limits(limits.clone())
            .run();
        *body.lock().unwrap() = bytes.clone();
        let net = Deploy::new(&server.url("/input.zip"))
            .unwrap()
            .dest(root.join("net/app"))
            .limits(limits.clone())
            .run();
        match (&local, &net) {
            (Ok(_), Ok(report)) => {
                streamed_ok += usize::from(report.streamed);
                assert_eq!(
                    snapshot(&root.join("net/app")),
                    snapshot(&root.join("app")),
                    "{name}: trees differ (streamed {}, fallback {:?})",
                    report.streamed,
                    report.stream_fallback
                );
            }
            (Err(a), Err(b)) => assert_eq!(
                (a.code(), a.to_string()),
                (b.code(), b.to_string()),
                "{name}"
            ),
            (a, b) => panic!("{name}: local {a:?} but over HTTP {b:?}"),
        }
    }
    eprintln!("{streamed_ok} installed by extracting while downloading");
}

/// `user:password@` when the text starts with `scheme://user:password@` and
/// has that only once.
fn credentials(text: &str) -> Option<String> {
    // Shown text never has control characters (URL parsing drops tabs and
    // line breaks, errors drop the rest): compare without them.
    let text: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    let url = url::Url::parse(&text).ok()?;
    let password = url.password().filter(|p| p.len() >= 4)?;
    let userinfo = format!("{}:{password}@", url.username());
    let prefix = format!("{}://{userinfo}", url.scheme());
    (text.starts_with(&prefix) && text.matches(&userinfo).count() == 1).then_some(userinfo)
}

#[test]
fn kept_locations_and_digests_parse_or_are_refused() {
    let texts = inputs("parse");
    assert!(!texts.is_empty());
    for (name, bytes) in texts {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(d) = text.parse::<Sha256Digest>() {
            assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d, "{name}");
        }
        // The credentials never show (the same text may also be part of a
        // path, query or fragment, which are not credentials).
        let shown = match Source::parse(&text) {
            Ok(source) => source.redacted(),
            Err(e) => e.to_string(),
        };
        if let Some(secret) = credentials(&text) {
            assert!(!shown.contains(&secret), "{name}: {shown}");
        }
    }
}
