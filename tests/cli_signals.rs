//! The example CLI stopped by a signal mid-deploy, including as PID 1 of a
//! new PID namespace (a container's entrypoint, where a signal without a
//! handler is dropped): it must cancel within a second, leave DEST and the
//! state dir clean, and exit with 128 + the signal. Also the low-speed flags.

mod common;
use common::cli_path;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use zipdeploy::Sha256Digest;

/// A package big enough that a server stalling after 1000 bytes is caught
/// mid-body.
fn big_package() -> Vec<u8> {
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    zip_of(&[
        Entry::File("VERSION", b"new"),
        Entry::File("data.bin", &noise),
    ])
}

/// A DEST holding a previous deploy, and a server that stalls mid-body.
struct Fixture {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    before: Before,
    server: TestServer,
    sha256: String,
}

impl Fixture {
    /// Holds DEST's deploy lock, as another deploy does, until dropped.
    fn hold_the_lock(&self) -> std::fs::File {
        let held = std::fs::OpenOptions::new()
            .write(true)
            .open(self.tmp.path().join(".app.zipdeploy/lock"))
            .unwrap();
        held.lock().unwrap();
        held
    }

    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app");
        let before = install_previous(&dest, &app_zip("old"));
        let pkg = big_package();
        let sha256 = Sha256Digest::of(&pkg).to_hex();
        let server = TestServer::start(move |_, _| {
            Reply::ok(pkg.clone()).fault(Fault::StallAfter(1000, Duration::from_secs(30)))
        });
        Fixture {
            before,
            tmp,
            dest,
            server,
            sha256,
        }
    }

    /// The deploy command line, after `program`.
    fn command(&self, program: &[&str]) -> Command {
        let mut cmd = bare(program[0]);
        cmd.args(&program[1..])
            .arg(cli_path())
            .arg("--url")
            .arg(self.server.url("/app.zip"))
            .arg("--sha256")
            .arg(&self.sha256)
            .arg("--dest")
            .arg(&self.dest)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Waits until the server has been asked for the package, and a little
    /// more so that the body has stalled.
    fn wait_for_the_stall(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.server.requests().is_empty() {
            assert!(Instant::now() < deadline, "the CLI never asked the server");
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(400));
    }

    /// DEST is as it was, and the state dir holds no work file.
    fn assert_intact(&self) {
        assert_untouched(&self.dest, &self.before);
    }
}

/// `program`, run with no environment but `PATH` and no stdin, as the
/// tests below run the CLI (directly, or under `sh` or `unshare`).
fn bare(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// Sends SIGTERM to `pid` (the CLI, `child` itself or its only child) and
/// checks that `child` then ends within a second with 143, saying so.
fn assert_sigterm_stops_it_within_a_second(child: &mut Child, pid: u32) {
    kill(pid, "TERM");
    let (status, took) = wait_at_most(child, Duration::from_secs(5));
    let stderr = stderr_of(child);
    assert!(took < Duration::from_secs(1), "took {took:?}; {stderr}");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits at most `limit` for `child`; returns its status and how long it took.
fn wait_at_most(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut text).unwrap();
    text
}

/// The only child of `pid`, once it has one.
fn only_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next() {
            return child.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "{pid} has no child");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_stops_the_cli_as_pid_1_of_a_pid_namespace_within_a_second() {
    let f = Fixture::new();
    let mut unshare = f
        .command(&["unshare", "--pid", "--fork", "--kill-child"])
        .spawn()
        .expect("unshare (util-linux) runs");
    // unshare forks: its child is zipdeploy, PID 1 in the new namespace.
    let zipdeploy = only_child(unshare.id());
    let status = std::fs::read_to_string(format!("/proc/{zipdeploy}/status")).unwrap();
    f.wait_for_the_stall();
    let nspid = std::fs::read_to_string(format!("/proc/{zipdeploy}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .map(|l| l.split_whitespace().last().unwrap().to_string());
    assert_eq!(nspid.as_deref(), Some("1"), "{status}");

    assert_sigterm_stops_it_within_a_second(&mut unshare, zipdeploy);
    f.assert_intact();
}

#[test]
fn sigint_and_sighup_stop_the_cli_with_128_plus_the_signal() {
    for (signal, code) in [("INT", 130), ("HUP", 129)] {
        let f = Fixture::new();
        let mut cli = f.command(&["env"]).spawn().unwrap();
        f.wait_for_the_stall();
        // `env` execs the CLI: same process.
        kill(cli.id(), signal);
        let (status, took) = wait_at_most(&mut cli, Duration::from_secs(5));
        let stderr = stderr_of(&mut cli);
        assert!(took < Duration::from_secs(1), "SIG{signal} took {took:?}");
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        f.assert_intact();
    }
}

#[test]
fn sigterm_stops_the_cli_waiting_for_another_deploys_lock_within_a_second() {
    let f = Fixture::new();
    // Another deploy to the same DEST holds its lock.
    let _held = f.hold_the_lock();
    let mut cli = f.command(&["env"]).spawn().unwrap();
    thread::sleep(Duration::from_millis(600));
    assert!(
        f.server.requests().is_empty(),
        "the lock was not waited for"
    );
    let pid = cli.id();
    assert_sigterm_stops_it_within_a_second(&mut cli, pid);
    f.assert_intact();
}

#[test]
fn sigterm_while_the_report_is_blocked_on_a_full_pipe_keeps_command_from_starting() {
    // A supervisor that does not read stdout yet: a background writer fills
    // the pipe, so the CLI blocks writing its --json report after the
    // deploy. SIGTERM then must still keep COMMAND from starting.
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("app.zip");
    std::fs::write(&package, app_zip("1")).unwrap();
    let dest = tmp.path().join("app");
    let started = tmp.path().join("started");
    let mut cli = bare("sh")
        .arg("-c")
        .arg(r#"(head -c 4000000 /dev/zero &); exec "$0" "$@""#)
        .arg(cli_path())
        .arg("--json")
        .args(["--url".as_ref(), package.as_os_str()])
        .args(["--dest".as_ref(), dest.as_os_str()])
        .args(["--".as_ref(), "touch".as_ref(), started.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `sh` execs the CLI: same process. Wait for it to block in the write.
    let deadline = Instant::now() + Duration::from_secs(20);
    let wchan = format!("/proc/{}/wchan", cli.id());
    // `pipe_write`, or `anon_pipe_write` on newer kernels.
    while !std::fs::read_to_string(&wchan)
        .unwrap_or_default()
        .ends_with("pipe_write")
    {
        assert!(Instant::now() < deadline, "the CLI never blocked writing");
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        read(dest.join("VERSION")),
        b"1",
        "deployed before the report"
    );
    kill(cli.id(), "TERM");
    let mut stdout = cli.stdout.take().unwrap();
    let drain = thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let (status, _) = wait_at_most(&mut cli, Duration::from_secs(10));
    let stderr = stderr_of(&mut cli);
    drain.join().unwrap().unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM after the deploy"),
        "{stderr}"
    );
    assert!(!started.exists(), "COMMAND started after SIGTERM");
}

#[test]
fn sigterm_stops_a_rollback_waiting_for_a_deploys_lock_as_pid_1_within_a_second() {
    // `--rollback -- COMMAND` as a container's entrypoint while another
    // deploy holds the lock: as PID 1, a SIGTERM without a handler would be
    // dropped, and the rollback would wait for the lock, then start COMMAND.
    let f = Fixture::new();
    let _held = f.hold_the_lock();
    let started = f.tmp.path().join("started");
    let mut unshare = bare("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(cli_path())
        .arg("--rollback")
        .arg("--dest")
        .arg(&f.dest)
        .args(["--".as_ref(), "touch".as_ref(), started.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs");
    let zipdeploy = only_child(unshare.id());
    thread::sleep(Duration::from_millis(600));
    assert_sigterm_stops_it_within_a_second(&mut unshare, zipdeploy);
    assert!(!started.exists(), "COMMAND started");
    f.assert_intact();
}

#[test]
fn speed_limit_flags_and_variables_reach_the_library() {
    let pkg = app_zip("new");
    let server = TestServer::start(move |_, _| {
        Reply::ok(pkg.clone()).fault(Fault::Trickle(1, Duration::from_millis(200)))
    });
    let tmp = tempfile::tempdir().unwrap();
    let base = || {
        let mut cmd = bare(cli_path());
        cmd.arg("--url")
            .arg(server.url("/app.zip"))
            .arg("--dest")
            .arg(tmp.path().join("app"))
            .args(["--retries", "0"]);
        cmd
    };
    let mut by_flag = base();
    by_flag.args(["--speed-limit", "1K", "--speed-time", "0.6"]);
    let mut by_env = base();
    by_env
        .env("ZIPDEPLOY_SPEED_LIMIT", "1000")
        .env("ZIPDEPLOY_SPEED_TIME", "0.6");
    for mut cmd in [by_flag, by_env] {
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("low speed"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!tmp.path().join("app").exists());
    }
}
