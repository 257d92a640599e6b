//! A small container for the recipe tests: a new mount namespace whose root
//! holds the host's /usr and /etc, the CLI where the recipes put it, the
//! volume and the secrets at the recipe's paths, and the recipe's command
//! exec'd as PID 1 of a new PID namespace, as the recipe's user.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Where the recipes put the CLI (examples/Dockerfile copies it there).
pub const CLI_IN_CONTAINER: &str = "/usr/local/bin/zipdeploy";
/// Docker's default PATH, which the images of these recipes have.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One container of a recipe.
#[derive(Clone, Debug)]
pub struct Container {
    /// uid and gid the process runs as.
    pub user: (u32, u32),
    /// Where the volume is mounted inside.
    pub volume: String,
    /// Files mounted inside (secrets): path, contents.
    pub files: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
    pub workdir: Option<String>,
}

impl Container {
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_file(&mut self, path: &str, contents: &str) {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.into(), contents.into()));
    }
}

/// The host side of a pod: the volume (a directory bind-mounted into each
/// container) and scratch space.
pub struct Pod {
    pub tmp: tempfile::TempDir,
    pub volume: PathBuf,
}

impl Pod {
    /// A volume owned by `owner` with `mode`, as the orchestrator makes it.
    pub fn new(owner: (u32, u32), mode: u32) -> Pod {
        let tmp = tempfile::tempdir().unwrap();
        let volume = tmp.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        std::os::unix::fs::chown(&volume, Some(owner.0), Some(owner.1)).unwrap();
        std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(mode)).unwrap();
        Pod { tmp, volume }
    }

    /// DEST as the host sees it.
    pub fn host_path(&self, c: &Container, in_container: &str) -> PathBuf {
        let rel = Path::new(in_container)
            .strip_prefix(&c.volume)
            .unwrap_or_else(|_| panic!("{in_container} is not on the volume {}", c.volume));
        self.volume.join(rel)
    }

    /// Starts `c`: `unshare` forks a shell that builds the container's root
    /// and execs, through chroot and setpriv, into `c.argv`, PID 1 of the
    /// new PID namespace.
    pub fn start(&self, c: &Container) -> Running {
        let run = tempfile::tempdir_in(self.tmp.path()).unwrap();
        let root = run.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut script = String::from("set -e\n");
        let r = q(root.to_str().unwrap());
        script += &format!("mount -t tmpfs -o mode=0755 root {r}\ncd {r}\n");
        for top in [
            "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc",
        ] {
            let host = Path::new("/").join(top);
            if let Ok(link) = std::fs::read_link(&host) {
                script += &format!("ln -s {} {top}\n", q(link.to_str().unwrap()));
            } else if host.is_dir() {
                script += &format!("mkdir {top}\nmount --rbind /{top} {top}\n");
            }
        }
        script += "mkdir proc dev tmp\nmount -t proc proc proc\nmount --rbind /dev dev\n";
        script += "chmod 1777 tmp\n";
        // The host's /usr/local is not the image's: only the CLI is there.
        script += "mount -t tmpfs -o mode=0755 local usr/local\nmkdir usr/local/bin\n";
        script += &format!(
            "touch .{CLI_IN_CONTAINER}\nmount --bind {} .{CLI_IN_CONTAINER}\n",
            q(crate::common::cli_path().to_str().unwrap())
        );
        let volume = q(&format!(".{}", c.volume));
        script += &format!(
            "mkdir -p {volume}\nmount --bind {} {volume}\n",
            q(self.volume.to_str().unwrap())
        );
        for (i, (path, contents)) in c.files.iter().enumerate() {
            let host = run.path().join(format!("file{i}"));
            std::fs::write(&host, contents).unwrap();
            std::os::unix::fs::chown(&host, Some(c.user.0), Some(c.user.1)).unwrap();
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o400)).unwrap();
            let inside = q(&format!(".{path}"));
            script += &format!(
                "mkdir -p \"$(dirname {inside})\"\ntouch {inside}\nmount --bind {} {inside}\n",
                q(host.to_str().unwrap())
            );
        }
        let mut argv: Vec<String> = Vec::new();
        if let Some(dir) = &c.workdir {
            argv.extend(["sh", "-c", "cd \"$0\" && exec \"$@\"", dir].map(String::from));
        }
        argv.extend(c.argv.iter().cloned());
        let mut env: Vec<String> = Vec::new();
        if c.env("PATH").is_none() {
            env.push(format!("PATH={CONTAINER_PATH}"));
        }
        env.extend(c.env.iter().map(|(k, v)| format!("{k}={v}")));
        script += &format!(
            "exec chroot {r} setpriv --reuid={} --regid={} --clear-groups env -i {} {}\n",
            c.user.0,
            c.user.1,
            env.iter().map(|s| q(s)).collect::<Vec<_>>().join(" "),
            argv.iter().map(|s| q(s)).collect::<Vec<_>>().join(" ")
        );
        let mut child = Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--kill-child", "sh", "-c"])
            .arg(&script)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            _run: run,
        }
    }
}

/// Shell quoting.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A started container.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    _run: tempfile::TempDir,
}

impl Running {
    /// The host PID of the container's PID 1, once it runs `comm`.
    pub fn pid_1(&self, comm: &str) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let unshare = self.child.id();
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                    .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let name = status.lines().find_map(|l| l.strip_prefix("Name:"));
                if name.map(str::trim) == Some(comm) {
                    let nspid = status
                        .lines()
                        .find_map(|l| l.strip_prefix("NSpid:"))
                        .unwrap();
                    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{status}");
                    return pid.parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no {comm} as PID 1");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next line on stdout starting with `prefix`.
    pub fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    let mut stderr = String::new();
                    let _ = std::io::Read::read_to_string(
                        self.child.stderr.as_mut().unwrap(),
                        &mut stderr,
                    );
                    panic!("no line starting with {prefix:?} on stdout: {status}; {stderr}")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line starting with {prefix:?} on stdout")
                }
            }
        }
    }

    /// Waits at most `limit`; returns the status, how long it took, stderr.
    pub fn wait(mut self, limit: Duration) -> (ExitStatus, Duration, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                return (status, started.elapsed(), stderr);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let mut stderr = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr);
                panic!("still running after {limit:?}; stderr: {stderr}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

pub fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
