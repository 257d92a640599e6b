//! The deployment recipes of `examples/recipes/` and the image of
//! `examples/Dockerfile`, run the way their orchestrator runs them. No
//! orchestrator runs here, so each test reads the recipe file itself (the
//! command, the environment, the user, where the volume is mounted) and runs
//! exactly that in a small container of its own: a new mount namespace whose
//! root holds the host's /usr and /etc, the CLI at /usr/local/bin/zipdeploy,
//! the volume bind-mounted at the recipe's path and the secrets at theirs,
//! with zipdeploy exec'd as PID 1 of a new PID namespace, as the recipe's
//! user. Each recipe must then: install from a server on 127.0.0.1, be a
//! no-op on its second start, stop within a second with exit 143 on SIGTERM
//! during the download with DEST intact, and (where zipdeploy execs the app)
//! leave the app as PID 1 receiving the signal.
//!
//! The image test builds `examples/Dockerfile` for real with buildah, on a
//! minimal Debian made by mmdebstrap (see `tests/run.sh`).

mod common;
#[path = "recipes/container.rs"]
mod container;
#[path = "recipes/read.rs"]
mod read;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use container::*;
use read::*;
use zipdeploy::Sha256Digest;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn recipe(name: &str) -> PathBuf {
    Path::new(ROOT).join("examples").join(name)
}

// ---------------------------------------------------------------------------
// The packages and the server.

/// The test's app: reports who and where it is, then waits for SIGTERM.
const APP_SH: &[u8] = b"trap 'echo \"app: TERM\"; exit 0' TERM\n\
echo \"app: pid $$ uid $(id -u) in $(pwd) version $(cat VERSION) init $(cat initialized 2>/dev/null || echo no)\"\n\
while :; do sleep 0.05; done\n";
/// The image's `ZIPDEPLOY_INIT=init.sh` convention: runs in the staged tree.
const INIT_SH: &[u8] = b"echo yes > initialized\n";

fn package(version: &str) -> Vec<u8> {
    // Big enough that a server stalling after 1000 bytes is caught mid-body.
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    zip_of(&[
        Entry::File("VERSION", version.as_bytes()),
        Entry::File("app.sh", APP_SH),
        Entry::File("init.sh", INIT_SH),
        Entry::File("data.bin", &noise),
    ])
}

/// Serves `/v1.zip` whole and `/v2.zip` stalled after 1000 bytes.
struct Packages {
    server: TestServer,
    v1_sha256: String,
    v2_sha256: String,
}

impl Packages {
    fn start() -> Packages {
        let (v1, v2) = (package("1"), package("2"));
        let v1_sha256 = Sha256Digest::of(&v1).to_hex();
        let v2_sha256 = Sha256Digest::of(&v2).to_hex();
        let server = TestServer::start(move |req, _| match req.path.as_str() {
            "/v1.zip" => Reply::ok(v1.clone()),
            "/v2.zip" => {
                Reply::ok(v2.clone()).fault(Fault::StallAfter(1000, Duration::from_secs(30)))
            }
            _ => Reply::status(404),
        });
        Packages {
            server,
            v1_sha256,
            v2_sha256,
        }
    }

    fn requests_for(&self, path: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

// ---------------------------------------------------------------------------
// The scenarios every recipe goes through.

/// DEST holds version `v`, installed by zipdeploy (state beside it).
fn assert_installed(pod: &Pod, c: &Container, dest: &str, v: &str) {
    let host = pod.host_path(c, dest);
    assert_eq!(read(host.join("VERSION")), v.as_bytes(), "DEST's VERSION");
    let meta = std::fs::metadata(&host).unwrap();
    assert_eq!((meta.uid(), meta.gid()), c.user, "DEST's owner");
    let name = host.file_name().unwrap().to_str().unwrap();
    let state = host.with_file_name(format!(".{name}.zipdeploy"));
    assert!(state.is_dir(), "no state dir at {}", state.display());
}

/// SIGTERM while the download of v2 stalls: exit 143 within a second,
/// DEST and the state dir as they were.
fn sigterm_during_the_download(pkgs: &Packages, pod: &Pod, c: &Container, dest: &str) {
    let mut c = c.clone();
    c.set_env("PACKAGE_SHA256", &pkgs.v2_sha256);
    let url_file = c.env("PACKAGE_ZIP_URL_FILE").unwrap().to_string();
    c.set_file(&url_file, &pkgs.server.url("/v2.zip"));
    let host_dest = pod.host_path(&c, dest);
    let before = snapshot(&host_dest);
    let parent = host_dest.parent().unwrap().to_path_buf();
    let names_before = names_in(&parent);

    let asked = pkgs.requests_for("/v2.zip");
    let running = pod.start(&c);
    let zipdeploy = running.pid_1("zipdeploy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pkgs.requests_for("/v2.zip") == asked {
        assert!(Instant::now() < deadline, "zipdeploy never asked for v2");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(400));
    kill(zipdeploy, "TERM");
    let (status, took, stderr) = running.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}; {stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert_eq!(snapshot(&host_dest), before, "DEST changed");
    assert_eq!(names_in(&parent), names_before, "the volume changed");
    let name = host_dest.file_name().unwrap().to_str().unwrap();
    let work: Vec<_> = names_in(&parent.join(format!(".{name}.zipdeploy")))
        .into_iter()
        .filter(|n| n.starts_with("download-") || n.starts_with("staging-"))
        .collect();
    assert!(work.is_empty(), "work files left: {work:?}");
}

/// The recipe's container gets the v1 URL through its secret file.
fn with_v1(pkgs: &Packages, c: &Container) -> Container {
    let mut c = c.clone();
    c.set_env("PACKAGE_SHA256", &pkgs.v1_sha256);
    let url_file = c
        .env("PACKAGE_ZIP_URL_FILE")
        .expect("the recipe reads the URL from a file")
        .to_string();
    c.set_file(&url_file, &pkgs.server.url("/v1.zip"));
    c
}

/// zipdeploy execs the app (`c.argv` ends with the test's app): the app is
/// PID 1, in DEST, as the user, and gets SIGTERM.
fn start_then_stop_the_app(pod: &Pod, c: &Container, dest: &str, init_hook: bool) {
    let mut running = pod.start(c);
    let init = if init_hook { "yes" } else { "no" };
    assert_eq!(
        running.line("app: "),
        format!(
            "app: pid 1 uid {} in {dest} version 1 init {init}",
            c.user.0
        )
    );
    let app = running.pid_1("sh");
    kill(app, "TERM");
    assert_eq!(running.line("app: "), "app: TERM");
    let (status, _, stderr) = running.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A recipe where zipdeploy execs the app (compose, systemd).
fn exec_model(pod: &Pod, recipe_container: &Container, dest: &str) {
    let pkgs = Packages::start();
    let mut c = with_v1(&pkgs, recipe_container);
    let init_hook = c.env("ZIPDEPLOY_INIT").is_some();
    c.argv.extend(["sh", "app.sh"].map(String::from));

    start_then_stop_the_app(pod, &c, dest, init_hook);
    assert_installed(pod, &c, dest, "1");
    assert_eq!(pkgs.requests_for("/v1.zip"), 1);

    // The second start: no download, DEST untouched, the app runs again.
    let installed = snapshot(&pod.host_path(&c, dest));
    start_then_stop_the_app(pod, &c, dest, init_hook);
    assert_eq!(
        pkgs.requests_for("/v1.zip"),
        1,
        "the second start downloaded"
    );
    assert_eq!(snapshot(&pod.host_path(&c, dest)), installed);

    let mut c = c.clone();
    c.argv.truncate(recipe_container.argv.len());
    sigterm_during_the_download(&pkgs, pod, &c, dest);
}

/// A recipe where zipdeploy installs and exits, and the app runs in another
/// container on the same volume (Kubernetes, Nomad).
fn init_model(pod: &Pod, init: &Container, app: &Container, dest: &str) {
    let pkgs = Packages::start();
    let init_v1 = with_v1(&pkgs, init);
    for start in 1..=2 {
        let (status, _, stderr) = pod.start(&init_v1).wait(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "start {start}: {stderr}");
        assert_installed(pod, init, dest, "1");
        assert_eq!(pkgs.requests_for("/v1.zip"), 1, "start {start}");
    }
    // The app container runs in DEST and sees the tree.
    let mut app = app.clone();
    app.argv = ["sh", "app.sh"].map(String::from).to_vec();
    start_then_stop_the_app(pod, &app, dest, init.env("ZIPDEPLOY_INIT").is_some());

    sigterm_during_the_download(&pkgs, pod, &with_v1(&pkgs, init), dest);
}

// ---------------------------------------------------------------------------
// The recipes.

#[test]
fn compose_recipe_runs_the_image_entrypoint_as_pid_1_on_its_volume() {
    let compose = yaml(&recipe("recipes/compose.yaml"));
    let image = dockerfile();
    let svc = "services.app";
    assert_eq!(
        image.cli, CLI_IN_CONTAINER,
        "the Dockerfile puts the CLI elsewhere"
    );
    assert_eq!(
        compose[&format!("{svc}.build.dockerfile")],
        "examples/Dockerfile"
    );
    assert!(!compose.contains_key(&format!("{svc}.entrypoint")));
    assert!(
        !compose.contains_key(&format!("{svc}.init")) || compose[&format!("{svc}.init")] == "False"
    );
    // The compose file names the app; the test runs its own in its place.
    assert_eq!(yaml_list(&compose, &format!("{svc}.command")), image.cmd);

    let volumes = yaml_list(&compose, &format!("{svc}.volumes"));
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let (name, target) = volumes[0].split_once(':').unwrap();
    assert!(
        compose.contains_key(&format!("volumes.{name}")),
        "named volume {name}"
    );
    let user = compose
        .get(&format!("{svc}.user"))
        .cloned()
        .unwrap_or(image.user.clone());
    let ids = user_ids(&user);

    let mut env = image.env.clone();
    for (k, v) in &compose {
        if let Some(var) = k.strip_prefix(&format!("{svc}.environment.")) {
            env.retain(|(n, _)| n != var);
            env.push((var.to_string(), v.clone()));
        }
    }
    let mut files = Vec::new();
    for secret in yaml_list(&compose, &format!("{svc}.secrets")) {
        assert!(compose.contains_key(&format!("secrets.{secret}.file")));
        files.push((format!("/run/secrets/{secret}"), String::new()));
    }
    let c = Container {
        user: ids,
        volume: target.to_string(),
        files,
        env,
        argv: image.entrypoint.clone(),
        workdir: None,
    };
    let dest = c
        .env("PACKAGE_DIR")
        .expect("the image sets PACKAGE_DIR")
        .to_string();
    // A named volume starts as a copy of the image's directory: the
    // Dockerfile makes /var/www, owned by the image's user, 0755.
    let pod = Pod::new(ids, 0o755);
    exec_model(&pod, &c, &dest);
}

#[test]
fn systemd_recipe_runs_in_its_state_directory_and_execs_the_app() {
    let unit = unit_service(&recipe("recipes/app.service"));
    let get = |key: &str| -> Vec<String> {
        unit.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one = |key: &str| -> String {
        let values = get(key);
        assert_eq!(values.len(), 1, "{key}: {values:?}");
        values[0].clone()
    };
    assert_eq!(one("Type"), "exec");
    assert_eq!(one("KillMode"), "mixed", "SIGTERM to the main process only");
    let (uid, _) = user_ids(&one("User"));
    let (_, gid) = user_ids(&one("Group"));
    // StateDirectory=: /var/lib/NAME, owned by User= and Group=, 0755.
    let state_dir = format!("/var/lib/{}", one("StateDirectory"));
    let credentials = "/run/credentials/app.service";
    let mut files = Vec::new();
    for cred in get("LoadCredential") {
        let (name, _) = cred.split_once(':').unwrap();
        files.push((format!("{credentials}/{name}"), String::new()));
    }
    let mut env = Vec::new();
    for assignment in get("Environment") {
        let (k, v) = assignment.split_once('=').unwrap();
        env.push((k.to_string(), v.replace("%d", credentials)));
    }
    // EnvironmentFile= holds PACKAGE_SHA256 (set by the scenario).
    assert_eq!(get("EnvironmentFile").len(), 1);
    let exec_start: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    let app_at = exec_start
        .iter()
        .position(|a| a == "--")
        .expect("`--` before the app")
        + 1;
    let argv = exec_start[..app_at].to_vec();
    assert_eq!(argv[0], CLI_IN_CONTAINER);
    let dest = argv[argv.iter().position(|a| a == "--dest").unwrap() + 1].clone();
    let c = Container {
        user: (uid, gid),
        volume: state_dir,
        files,
        env,
        argv,
        workdir: None,
    };
    let pod = Pod::new((uid, gid), 0o755);
    exec_model(&pod, &c, &dest);
}

#[test]
fn systemd_recipe_passes_systemd_analyze_verify() {
    // The unit names /usr/local/bin/zipdeploy: provide it in a private
    // mount namespace, as the install step of the recipe does.
    let unit = recipe("recipes/app.service");
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(
            "set -e; mount -t tmpfs local /usr/local; mkdir /usr/local/bin; \
             touch /usr/local/bin/zipdeploy; mount --bind \"$1\" /usr/local/bin/zipdeploy; \
             systemd-analyze verify \"$2\"",
        )
        .arg("sh")
        .arg(cli_path())
        .arg(&unit)
        .output()
        .expect("unshare runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify reports unknown or bad settings as warnings on stderr.
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn kubernetes_recipe_installs_in_an_init_container_on_the_shared_empty_dir() {
    let k8s = yaml(&recipe("recipes/kubernetes.yaml"));
    let pod_spec = "spec.template.spec";
    let sc = format!("{pod_spec}.securityContext");
    let user: (u32, u32) = (
        k8s[&format!("{sc}.runAsUser")].parse().unwrap(),
        k8s[&format!("{sc}.runAsGroup")].parse().unwrap(),
    );
    let fs_group: u32 = k8s[&format!("{sc}.fsGroup")].parse().unwrap();
    let volume = yaml_find(&k8s, &format!("{pod_spec}.volumes"), "name", "www");
    assert_eq!(k8s[&format!("{volume}.emptyDir")], "{}");

    let container = |path: &str| -> (Container, String) {
        let mount = yaml_find(&k8s, &format!("{path}.volumeMounts"), "name", "www");
        let mut env = Vec::new();
        for i in 0.. {
            let Some(name) = k8s.get(&format!("{path}.env.{i}.name")) else {
                break;
            };
            env.push((name.clone(), k8s[&format!("{path}.env.{i}.value")].clone()));
        }
        let mut files = Vec::new();
        for i in 0.. {
            let Some(name) = k8s.get(&format!("{path}.volumeMounts.{i}.name")) else {
                break;
            };
            if name != "www" {
                // A secret volume: the test mounts the one file it reads.
                let dir = &k8s[&format!("{path}.volumeMounts.{i}.mountPath")];
                files.push((format!("{dir}/url"), String::new()));
            }
        }
        let mut argv = yaml_list(&k8s, &format!("{path}.command"));
        argv.extend(yaml_list(&k8s, &format!("{path}.args")));
        let c = Container {
            user,
            volume: k8s[&format!("{mount}.mountPath")].clone(),
            files,
            env,
            argv,
            workdir: k8s.get(&format!("{path}.workingDir")).cloned(),
        };
        let image = k8s[&format!("{path}.image")].clone();
        (c, image)
    };
    let (init, _) = container(&format!("{pod_spec}.initContainers.0"));
    let (app, _) = container(&format!("{pod_spec}.containers.0"));
    assert_eq!(
        init.argv,
        [CLI_IN_CONTAINER],
        "no args: the image's CMD is not run"
    );
    let dest = init.env("PACKAGE_DIR").unwrap().to_string();
    assert_eq!(app.workdir.as_deref(), Some(dest.as_str()));
    // emptyDir: 0777; with fsGroup, group-owned by it and setgid.
    let pod = Pod::new((0, fs_group), 0o2777);
    init_model(&pod, &init, &app, &dest);
}

#[test]
fn nomad_recipe_installs_in_a_prestart_task_on_the_alloc_dir() {
    let job = hcl(&recipe("recipes/nomad.hcl"));
    let group = "job.app.group.app";
    // The docker driver's task directories.
    let interpolate = |v: &str| {
        unquote(v)
            .replace("${NOMAD_ALLOC_DIR}", "/alloc")
            .replace("${NOMAD_SECRETS_DIR}", "/secrets")
    };
    let task = |name: &str| -> Container {
        let t = format!("{group}.task.{name}");
        assert_eq!(job[&format!("{t}.driver")], "\"docker\"");
        let env: Vec<(String, String)> = job
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&format!("{t}.env."))
                    .map(|var| (var.to_string(), interpolate(v)))
            })
            .collect();
        let mut argv = Vec::new();
        if let Some(e) = job.get(&format!("{t}.config.entrypoint")) {
            argv.extend(string_list(e));
        }
        if let Some(c) = job.get(&format!("{t}.config.command")) {
            argv.push(unquote(c).to_string());
        }
        if let Some(a) = job.get(&format!("{t}.config.args")) {
            argv.extend(string_list(a));
        }
        let files = job
            .get(&format!("{t}.template.destination"))
            .map(|d| vec![(interpolate(d), String::new())])
            .unwrap_or_default();
        Container {
            user: user_ids(unquote(&job[&format!("{t}.user")])),
            volume: "/alloc".into(),
            files,
            env,
            argv,
            workdir: job
                .get(&format!("{t}.config.work_dir"))
                .map(|w| interpolate(w)),
        }
    };
    let init = task("zipdeploy");
    let app = task("app");
    let hook = format!("{group}.task.zipdeploy.lifecycle");
    assert_eq!(job[&format!("{hook}.hook")], "\"prestart\"");
    assert_eq!(job[&format!("{hook}.sidecar")], "false");
    assert_eq!(
        init.argv,
        [CLI_IN_CONTAINER],
        "no args: the image's CMD is not run"
    );
    let dest = init.env("PACKAGE_DIR").unwrap().to_string();
    assert_eq!(app.workdir.as_deref(), Some(dest.as_str()));
    // Nomad's shared alloc dir is world-writable.
    let pod = Pod::new((0, 0), 0o777);
    init_model(&pod, &init, &app, &dest);
}

// ---------------------------------------------------------------------------
// The image of examples/Dockerfile, built with buildah.

/// The minimal Debian (`mmdebstrap --variant=minbase
/// --include=ca-certificates bookworm`) that `tests/run.sh --deps` makes.
fn base_rootfs() -> PathBuf {
    let path = std::env::var_os("RECIPES_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/recipes/bookworm-minbase.tar"));
    assert!(
        path.is_file(),
        "{} is missing: `tests/run.sh --deps` makes it with mmdebstrap",
        path.display()
    );
    path
}

/// buildah with its own storage, so that nothing is left in the host's.
struct Buildah {
    store: tempfile::TempDir,
}

impl Buildah {
    fn run(&self, args: &[&str]) -> String {
        let store = self.store.path();
        let out = Command::new("buildah")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("buildah runs");
        assert!(
            out.status.success(),
            "buildah {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One line per item of a list in the image's config.
    fn config_list(&self, image: &str, field: &str) -> Vec<String> {
        let format = format!("{{{{range .OCIv1.Config.{field}}}}}{{{{.}}}}\n{{{{end}}}}");
        self.run(&["inspect", "--type", "image", "--format", &format, image])
            .lines()
            .map(String::from)
            .collect()
    }
}

/// The Dockerfile with its `rust` build stage replaced by one that copies
/// the binary built on the host to the same path: no image registry here.
fn dockerfile_with_host_binary() -> String {
    let text = std::fs::read_to_string(recipe("Dockerfile")).unwrap();
    let start = text
        .find("\nFROM rust:")
        .expect("a `FROM rust:` build stage")
        + 1;
    let end = start + text[start..].find("\nFROM ").expect("a runtime stage") + 1;
    assert!(text[start..end].contains(" AS build\n"));
    let image = dockerfile();
    let copy_from = text[end..]
        .lines()
        .find_map(|l| l.strip_prefix("COPY --from=build "))
        .expect("COPY --from=build");
    let built = copy_from.split_whitespace().next().unwrap();
    assert_eq!(image.cli, CLI_IN_CONTAINER);
    format!(
        "{}FROM scratch AS build\nCOPY zipdeploy {built}\n{}",
        &text[..start],
        &text[end..]
    )
}

/// The host PID of a descendant of `pid` that is PID 1 of a nested PID
/// namespace and runs `comm`.
fn nested_pid_1(pid: u32, comm: &str) -> Option<u32> {
    // Every thread's children: Go (buildah) forks from any thread.
    let mut children = String::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let task = task.unwrap().path().join("children");
        children += &std::fs::read_to_string(task).unwrap_or_default();
        children += " ";
    }
    for child in children.split_whitespace() {
        let child: u32 = child.parse().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
        let name = status.lines().find_map(|l| l.strip_prefix("Name:"));
        let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"));
        let nspid: Vec<&str> = nspid
            .map(|n| n.split_whitespace().collect())
            .unwrap_or_default();
        if name.map(str::trim) == Some(comm) && nspid.len() > 1 && nspid.last() == Some(&"1") {
            return Some(child);
        }
        if let Some(found) = nested_pid_1(child, comm) {
            return Some(found);
        }
    }
    None
}

#[test]
fn dockerfile_builds_and_its_entrypoint_deploys_then_execs_the_app_as_pid_1() {
    let rootfs = base_rootfs();
    let buildah = Buildah {
        store: tempfile::tempdir().unwrap(),
    };
    // The base image: the minimal Debian under the name the Dockerfile uses.
    let base = buildah.run(&["from", "scratch"]);
    buildah.run(&["add", base.trim(), rootfs.to_str().unwrap(), "/"]);
    buildah.run(&[
        "commit",
        "-q",
        "--rm",
        base.trim(),
        "docker.io/library/debian:bookworm-slim",
    ]);

    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        dockerfile_with_host_binary(),
    )
    .unwrap();
    std::fs::copy(cli_path(), context.path().join("zipdeploy")).unwrap();
    buildah.run(&[
        "bud",
        "--isolation",
        "chroot",
        "--pull-never",
        // No php-cli: the image has ca-certificates and what minbase has.
        "--build-arg",
        "APP_PACKAGES=",
        "-t",
        "localhost/app-base",
        context.path().to_str().unwrap(),
    ]);
    let entrypoint = buildah.config_list("localhost/app-base", "Entrypoint");
    let env = buildah.config_list("localhost/app-base", "Env");
    let user = buildah
        .run(&[
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.OCIv1.Config.User}}",
            "localhost/app-base",
        ])
        .trim()
        .to_string();
    assert_eq!(entrypoint, [CLI_IN_CONTAINER, "--"]);
    assert_eq!(user, "www-data");
    let dest = env
        .iter()
        .find_map(|e| e.strip_prefix("PACKAGE_DIR="))
        .expect("PACKAGE_DIR in the image")
        .to_string();
    let volume_at = Path::new(&dest)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    // The volume at DEST's parent, owned by the image's user as Docker's
    // named volume copies it from the image.
    let ids = user_ids(&user);
    let pod = Pod::new(ids, 0o755);
    let pkgs = Packages::start();
    let container = buildah.run(&["from", "--pull-never", "localhost/app-base"]);
    // Only what minbase has, ca-certificates and the CLI: no PHP.
    buildah.run(&[
        "run",
        "--isolation",
        "chroot",
        container.trim(),
        "--",
        "sh",
        "-c",
        "test -s /etc/ssl/certs/ca-certificates.crt && ! command -v php \
         && dpkg-query -W ca-certificates && ! dpkg-query -W php-cli",
    ]);
    let volume = format!("{}:{volume_at}", pod.volume.display());
    let url = format!("PACKAGE_ZIP_URL={}", pkgs.server.url("/v1.zip"));
    let sha256 = format!("PACKAGE_SHA256={}", pkgs.v1_sha256);
    let store = buildah.store.path();
    // As root only to make the PID namespace; setpriv then drops to the
    // image's user before the entrypoint runs, as PID 1.
    let mut run = Command::new("buildah");
    run.arg("--root")
        .arg(store.join("root"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args(["--storage-driver", "vfs", "run", "--isolation", "chroot"])
        .args([
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--user",
            "root",
            "-v",
            &volume,
        ])
        .args(["-e", &url, "-e", &sha256, container.trim(), "--"])
        .args(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"])
        .args([
            "setpriv",
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
        ])
        .arg("--init-groups")
        .args(&entrypoint)
        .args(["sh", "app.sh"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = run.spawn().expect("buildah runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut hello = String::new();
    stdout.read_line(&mut hello).unwrap();
    if hello.is_empty() {
        let out = child.wait_with_output().unwrap();
        panic!("no app: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(
        hello.trim_end(),
        format!("app: pid 1 uid {} in {dest} version 1 init yes", ids.0)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let app = loop {
        if let Some(pid) = nested_pid_1(child.id(), "sh") {
            break pid;
        }
        assert!(Instant::now() < deadline, "no app as PID 1");
        thread::sleep(Duration::from_millis(10));
    };
    kill(app, "TERM");
    let mut bye = String::new();
    stdout.read_line(&mut bye).unwrap();
    assert_eq!(bye.trim_end(), "app: TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Container {
        user: ids,
        volume: volume_at,
        files: vec![],
        env: vec![],
        argv: vec![],
        workdir: None,
    };
    assert_installed(&pod, &c, &dest, "1");
    buildah.run(&["rm", "--all"]);
}
