#!/usr/bin/env python3
"""Benchmark zipdeploy against what users do instead (issue 6).

    python3 examples/bench/run.py [--runs 5] [--only php-app,assets,tiny,php-app-bsdtar,many] [--out BENCHMARKS.md]
    python3 examples/bench/run.py --quick          # tiny package only, 3 runs: checks the harness in seconds

Run it as root from the repository (Python 3.11, standard library only).  It

  * installs what is missing with apt-get (nginx-light, curl, unzip, libarchive-tools for bsdtar,
    e2fsprogs; pkg-config and libssl-dev to build ripunzip) and ripunzip with
    `cargo install ripunzip --locked --root <target>/bench/ripunzip`; a tool that cannot be had is
    reported as unavailable, loudly, and the rest goes on;
  * builds the CLI with `cargo build --release --example zipdeploy`;
  * generates the packages with make_packages.py (cached in <target>/bench/pkgs);
  * serves them with a private nginx on 127.0.0.1 (sendfile on; /slow/ is limit_rate 50m; /rate25/ is
    limit_rate 25m per connection, as object stores and CDNs cap each connection; /norange25/ is the
    same cap from a server that advertises byte ranges but answers every request whole, max_ranges 0),
    or with a threaded Python server when nginx is unavailable;
  * puts every destination (and every temporary zip) on a journaled ext4 made in a sparse image file
    under <target>/bench and loop-mounted there, or on the host filesystem when it cannot mount;
  * for each package runs every tool round-robin (one warm-up round, then --runs rounds, the order
    rotated each round), each run into a fresh destination, `sync` before each run, warm page cache;
    times each run as a subprocess with os.wait4 (wall, user+sys CPU, peak RSS) and checks the tree it
    made (file count and bytes) after the run; php-app-bsdtar (php-app written again by bsdtar, with data
    descriptors) runs zipdeploy only, on loopback and at 50 MiB/s beside the bare download;
  * prints a Markdown report (medians, ratios to zipdeploy, the issue-6 targets as PASS/FAIL) and
    writes it to --out (default BENCHMARKS.md at the repository root; --quick writes
    <target>/bench/quick.md), and the raw samples to <target>/bench/results/.

<target> is $CARGO_TARGET_DIR, else <repo>/target.  It measures and does not gate: the exit status is
0 whatever the targets say, 1 when a tool failed or made a wrong tree (the run is not valid), 2 when
the set-up failed.  --runs 3 takes about 10-15 minutes on 2 cores (the first time add ~7 minutes to
build ripunzip and ~1 minute to generate the packages).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"))
CACHE = os.path.join(TARGET, "bench")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import make_packages  # noqa: E402  (beside this file)

MIB = 1 << 20
SLOW_RATE = "50m"  # nginx limit_rate: 50 MiB/s
SLOW_BYTES_PER_S = 50 * MIB
CAPPED_RATE = "25m"  # nginx limit_rate per connection on /rate25/ and /norange25/: 25 MiB/s
CAPPED_BYTES_PER_S = 25 * MIB
APT_PACKAGES = {"nginx": "nginx-light", "curl": "curl", "unzip": "unzip", "bsdtar": "libarchive-tools",
                "mkfs.ext4": "e2fsprogs", "sha256sum": "coreutils"}

# Reference figures of issue 6 (median wall s, peak RSS MiB), same kind of machine.
REFERENCE = {
    "php-app": {"shell": (3.62, 11), "python": (4.00, 36), "bsdtar": (3.20, 11), "ripunzip": (2.19, 74),
                "floor": (2.51, None)},
    "assets": {"shell": (7.61, 11), "python": (2.95, 21), "bsdtar": (2.43, 11), "ripunzip": (1.46, 68),
               "floor": (0.39, None)},
    "tiny": {"shell": (0.023, 11), "python": (0.110, 19), "bsdtar": (0.018, 11), "ripunzip": (0.127, 13),
             "floor": (0.006, None)},
}

PY_ZIPFILE = r"""
import hashlib, sys, tempfile, urllib.request, zipfile
url, expected, dest, tmpdir = sys.argv[1:]
h = hashlib.sha256()
with tempfile.TemporaryFile(dir=tmpdir) as f:
    with urllib.request.urlopen(url) as r:
        while chunk := r.read(1 << 20):
            h.update(chunk)
            f.write(chunk)
    if h.hexdigest() != expected:
        sys.exit(f"sha256 mismatch: {h.hexdigest()}")
    f.seek(0)
    zipfile.ZipFile(f).extractall(dest)
"""

FALLBACK_SERVER = r"""
import http.server, os, sys, time
root, port, rate, capped = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.serve(False)

    def do_GET(self):
        self.serve(True)

    def serve(self, body):
        path = self.path.split("?", 1)[0]
        pace = {"slow": rate, "rate25": capped, "norange25": capped}.get(path.split("/")[1])
        ranges = not path.startswith("/norange25/")
        name = os.path.basename(path)
        full = os.path.join(root, name)
        if not name or not os.path.isfile(full):
            self.send_error(404)
            return
        size = os.path.getsize(full)
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range", "")
        if ranges and spec.startswith("bytes=") and "," not in spec:
            a, _, b = spec[6:].partition("-")
            try:
                if a:
                    start, end = int(a), min(int(b) if b else size - 1, size - 1)
                else:
                    start = max(0, size - int(b))
                if start > end:
                    raise ValueError
                status = 206
            except ValueError:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        n = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(n))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        with open(full, "rb") as f:
            if not pace:
                self.connection.sendfile(f, start, n)
                return
            f.seek(start)
            t0, sent = time.monotonic(), 0
            while sent < n:
                chunk = f.read(min(256 * 1024, n - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
                ahead = sent / pace - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

Server(("127.0.0.1", port), Handler).serve_forever()
"""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loud(msg):
    bar = "!" * 78
    print(f"{bar}\n!! {msg}\n{bar}", file=sys.stderr, flush=True)


def run(argv, check=True, quiet=True, **kw):
    """Run a set-up command (not timed)."""
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(argv, check=check, stdin=subprocess.DEVNULL, stdout=out, stderr=out, **kw)


def capture(argv):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_line(text):
    return text.splitlines()[0] if text else "?"


def rel(path):
    """A path relative to the repository when inside it, for the report."""
    try:
        r = os.path.relpath(path, REPO)
    except ValueError:
        return path
    return path if r.startswith("..") else r


def fmt_s(x):
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


# --------------------------------------------------------------------------------------
# set-up: tools
# --------------------------------------------------------------------------------------
class Setup:
    def __init__(self, args):
        self.args = args
        self.notes = []        # lines for the report
        self.unavailable = {}  # tool key -> reason
        self.apt_updated = False
        os.makedirs(os.path.join(CACHE, "logs"), exist_ok=True)

    def apt_install(self, packages):
        if self.args.no_install:
            return False
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            log(f"cannot install {' '.join(packages)}: not root or no apt-get")
            return False
        logf = os.path.join(CACHE, "logs", "apt.log")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        with open(logf, "a") as f:
            if not self.apt_updated:
                log("apt-get update")
                subprocess.run(["apt-get", "update", "-qq"], stdout=f, stderr=f, env=env, check=False)
                self.apt_updated = True
            log(f"apt-get install {' '.join(packages)}")
            p = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                               stdout=f, stderr=f, env=env, check=False)
        if p.returncode != 0:
            log(f"apt-get install failed (see {logf})")
        return p.returncode == 0

    def tools(self):
        missing = sorted({pkg for cmd, pkg in APT_PACKAGES.items() if not shutil.which(cmd)})
        if missing:
            self.apt_install(missing)
        for cmd in ("curl", "unzip", "sha256sum"):
            if not shutil.which(cmd):
                raise SystemExit(f"{cmd} is required and could not be installed")
        if not shutil.which("bsdtar"):
            self.unavailable["bsdtar"] = "bsdtar (libarchive-tools) could not be installed"

    def spawner(self):
        """Compile spawn.c (see there why); None when impossible."""
        src = os.path.join(HERE, "spawn.c")
        exe = os.path.join(CACHE, "spawn")
        if os.access(exe, os.X_OK) and os.path.getmtime(exe) >= os.path.getmtime(src):
            return exe
        if not shutil.which("cc"):
            self.apt_install(["gcc", "libc6-dev"])
        if shutil.which("cc") and run(["cc", "-O2", "-Wall", "-o", exe, src], check=False).returncode == 0:
            return exe
        loud("could not compile examples/bench/spawn.c: peak RSS figures will include the harness's own")
        return None

    def ripunzip(self):
        if self.args.no_ripunzip:
            self.unavailable["ripunzip"] = "skipped (--no-ripunzip)"
            return None
        root = os.path.join(CACHE, "ripunzip")
        exe = os.path.join(root, "bin", "ripunzip")
        if os.access(exe, os.X_OK):
            return exe
        if shutil.which("ripunzip"):
            return shutil.which("ripunzip")
        if self.args.no_install:
            self.unavailable["ripunzip"] = "not installed (--no-install)"
            return None
        if not shutil.which("pkg-config") or subprocess.run(["pkg-config", "--exists", "openssl"]).returncode:
            self.apt_install(["pkg-config", "libssl-dev"])
        logf = os.path.join(CACHE, "logs", "ripunzip-install.log")
        build = os.path.join(CACHE, "ripunzip-build")
        log(f"cargo install ripunzip --locked --root {root}  (a few minutes; log: {logf})")
        with open(logf, "w") as f:
            p = subprocess.run(["cargo", "install", "ripunzip", "--locked", "--root", root, "--target-dir", build],
                               stdout=f, stderr=f, stdin=subprocess.DEVNULL, cwd=CACHE)
        if p.returncode == 0 and os.access(exe, os.X_OK):
            shutil.rmtree(build, ignore_errors=True)
            return exe
        reason = f"`cargo install ripunzip --locked` failed (see {logf})"
        loud(f"ripunzip is UNAVAILABLE: {reason}; its rows will say so")
        self.unavailable["ripunzip"] = reason
        return None

    def zipdeploy(self):
        """Path to the CLI binary and what it supports, or None."""
        if self.args.no_zipdeploy:
            self.unavailable["zipdeploy"] = "skipped (--no-zipdeploy)"
            return None, set()
        if self.args.zipdeploy_bin:
            exe = os.path.abspath(self.args.zipdeploy_bin)
            self.notes.append(f"zipdeploy: the binary given with --zipdeploy-bin `{exe}` (not built by this run)")
        else:
            if not os.path.exists(os.path.join(REPO, "examples", "zipdeploy.rs")) and not os.path.exists(
                    os.path.join(REPO, "examples", "zipdeploy", "main.rs")):
                reason = "the CLI (examples/zipdeploy.rs) is not in this tree yet"
                loud(f"zipdeploy is UNAVAILABLE: {reason}; measuring the other tools only")
                self.unavailable["zipdeploy"] = reason
                return None, set()
            logf = os.path.join(CACHE, "logs", "cargo-build.log")
            log("cargo build --release --example zipdeploy")
            with open(logf, "w") as f:
                p = subprocess.run(["cargo", "build", "--release", "--example", "zipdeploy"], cwd=REPO,
                                   stdout=f, stderr=f, stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                with open(logf) as f:
                    sys.stderr.write(f.read()[-4000:])
                raise SystemExit("cargo build --release --example zipdeploy failed")
            exe = os.path.join(TARGET, "release", "examples", "zipdeploy")
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"zipdeploy binary {exe} is missing")
        helptext = capture([exe, "--help"])
        flags = {f for f in ("--sync", "--json", "--quiet") if f in helptext}
        for f in ("--quiet", "--sync", "--json"):
            if f not in flags:
                log(f"warning: `zipdeploy --help` does not mention {f}; not using it")
        return exe, flags


# --------------------------------------------------------------------------------------
# set-up: destination filesystem
# --------------------------------------------------------------------------------------
def mount_of(path):
    """(device, mount point, fs type, options) of the filesystem holding path."""
    path = os.path.realpath(path)
    best = ("?", "/", "?", "")
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            mnt = mnt.replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                best = (dev, mnt, fstype, opts)
    return best


def ext4_journal(dev):
    out = capture(["dumpe2fs", "-h", dev])
    for line in out.splitlines():
        if line.startswith("Filesystem features:"):
            return "has_journal" in line.split()
    return None


class BenchFs:
    def __init__(self, args):
        self.args = args
        self.image = os.path.join(CACHE, "ext4.img")
        self.mnt = os.path.join(CACHE, "mnt")
        self.mounted = False
        self.root = None
        self.description = ""

    def setup(self):
        if os.path.ismount(self.mnt):
            log(f"unmounting a leftover {self.mnt}")
            run(["umount", self.mnt], check=False)
        why = None
        if self.args.host_fs:
            why = "--host-fs"
        elif os.geteuid() != 0:
            why = "not root"
        elif not shutil.which("mkfs.ext4"):
            why = "no mkfs.ext4"
        if why is None:
            try:
                os.makedirs(self.mnt, exist_ok=True)
                if os.path.exists(self.image):
                    os.unlink(self.image)
                with open(self.image, "wb") as f:
                    f.truncate(self.args.fs_gib << 30)
                # lazy init off: no background inode-table zeroing during the measurements; one inode per
                # 4 KiB (1.5 M in 6 GiB): the many package holds 200,000 entries in each of its trees (the
                # source of the write floor, the installed redeploy, the run's own), the default ratio
                # gives only ~390,000 inodes
                run(["mkfs.ext4", "-q", "-F", "-i", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                     self.image])
                p = subprocess.run(["mount", "-o", "loop", self.image, self.mnt], capture_output=True, text=True)
                if p.returncode != 0:
                    raise OSError(p.stderr.strip() or "mount failed")
                self.mounted = True
            except (OSError, subprocess.CalledProcessError) as e:
                why = f"cannot loop-mount an ext4 image: {e}"
                if os.path.exists(self.image):
                    os.unlink(self.image)
        if self.mounted:
            self.root = self.mnt
            dev, _, fstype, opts = mount_of(self.mnt)
            journal = ext4_journal(dev)
            host = mount_of(CACHE)
            self.description = (
                f"{fstype} ({'journaled' if journal else 'NO journal' if journal is False else 'journal unknown'}, "
                f"mount options `{opts}`) made by `mkfs.ext4 -q -F -i 4096 -E lazy_itable_init=0,lazy_journal_init=0` in a "
                f"{self.args.fs_gib} GiB sparse image file loop-mounted on {rel(self.mnt)} (image on the host's "
                f"{host[2]}); temporary zips are written to the same filesystem. A journaled ext4 is what users "
                "deploy onto; on a journal-less one (as some build hosts have), deleting and re-creating 20,000 files "
                "is pathologically slow and not what users see")
        else:
            self.root = os.path.join(CACHE, "hostfs")
            shutil.rmtree(self.root, ignore_errors=True)
            os.makedirs(self.root)
            dev, mnt, fstype, opts = mount_of(self.root)
            journal = ext4_journal(dev) if fstype.startswith("ext") else None
            jtext = {True: "journaled", False: "NO journal", None: "journal unknown"}[journal]
            self.description = (f"the HOST filesystem ({fstype} on {dev}, {jtext}, `{opts}`) because {why}; on a "
                                "journal-less ext4, deleting and re-creating 20,000 files is pathologically slow "
                                "and is not what users see")
            loud(f"destinations are on the host filesystem: {why}")
        for d in ("dest", "tmp", "src"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        log(f"destinations: {self.description}")

    def teardown(self):
        if self.mounted:
            for attempt in range(5):
                if run(["umount", self.mnt], check=False).returncode == 0:
                    break
                time.sleep(1)
            else:
                run(["umount", "-l", self.mnt], check=False)
            self.mounted = False
            if os.path.exists(self.image):
                os.unlink(self.image)
        elif self.root and os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


# --------------------------------------------------------------------------------------
# set-up: HTTP server
# --------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url, timeout=1.0):
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


class Server:
    def __init__(self, args, pkgdir, probe):
        self.args = args
        self.pkgdir = pkgdir
        self.probe = probe  # a file name that must be served
        self.proc = None
        self.base = None
        self.description = ""

    def start(self):
        nginx = shutil.which("nginx")
        if nginx and not self.args.python_server:
            try:
                self.start_nginx(nginx)
                return
            except OSError as e:
                loud(f"nginx did not start ({e}); falling back to Python's http.server")
                self.stop()
        self.start_python()

    def wait_ready(self):
        for _ in range(100):
            if self.proc.poll() is not None:
                raise OSError(f"server exited with status {self.proc.returncode}")
            if http_ok(f"{self.base}/{self.probe}") and http_ok(f"{self.base}/slow/{self.probe}"):
                return
            time.sleep(0.05)
        raise OSError("server did not answer within 5 s")

    def start_nginx(self, nginx):
        prefix = os.path.join(CACHE, "nginx")
        for d in ("tmp", "logs"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        port = free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"    {k}_temp_path {prefix}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi",
                                                                             "uwsgi", "scgi"))
        conf = f"""# written by examples/bench/run.py
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
{temp}    types {{ application/zip zip; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {self.pkgdir};
        location / {{ }}
        location /slow/ {{
            alias {self.pkgdir}/;
            limit_rate {SLOW_RATE};
        }}
        location /rate25/ {{
            alias {self.pkgdir}/;
            limit_rate {CAPPED_RATE};
        }}
        location /norange25/ {{
            alias {self.pkgdir}/;
            limit_rate {CAPPED_RATE};
            max_ranges 0;
            add_header Accept-Ranges bytes;
        }}
    }}
}}
"""
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.logf = open(os.path.join(prefix, "logs", "stderr.log"), "w")
        self.proc = subprocess.Popen([nginx, "-p", prefix, "-e", f"{prefix}/logs/error.log", "-c", path],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        self.base = f"http://127.0.0.1:{port}"
        self.wait_ready()
        version = capture([nginx, "-v"]).replace("nginx version: ", "")
        self.description = (f"{version} on 127.0.0.1 (private config {rel(path)}: 1 worker, sendfile on; "
                            f"/slow/ has limit_rate {SLOW_RATE} = 50 MiB/s; /rate25/ and /norange25/ limit_rate "
                            f"{CAPPED_RATE} = 25 MiB/s per connection, /norange25/ max_ranges 0)")
        log(f"server: {self.description} at {self.base}")

    def start_python(self):
        port = free_port()
        self.logf = open(os.path.join(CACHE, "logs", "python-server.log"), "w")
        self.proc = subprocess.Popen([sys.executable, "-c", FALLBACK_SERVER, self.pkgdir, str(port),
                                      str(SLOW_BYTES_PER_S), str(CAPPED_BYTES_PER_S)], stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf)
        self.base = f"http://127.0.0.1:{port}"
        try:
            self.wait_ready()
        except OSError as e:
            raise SystemExit(f"the fallback HTTP server did not start: {e}")
        why = "--python-server" if self.args.python_server else "nginx unavailable"
        self.description = (f"Python {platform.python_version()} http.server (threaded, examples/bench/run.py's "
                            f"fallback; {why}) on 127.0.0.1, /slow/ paced at 50 MiB/s, /rate25/ and /norange25/ "
                            "at 25 MiB/s per connection, /norange25/ ignoring Range)")
        loud(f"serving with the fallback Python server, not nginx: {self.description}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------------------
# the tools
# --------------------------------------------------------------------------------------
class Tool:
    """One row: how to prepare the destination, the command, what it must produce."""

    def __init__(self, key, label, argv, shown, dest_state="absent", verify=True, noop=None, json_out=False,
                 ref=None):
        self.key = key            # slug, also the destination directory name
        self.label = label
        self.argv = argv          # function(ctx) -> argv
        self.shown = shown        # the command as shown in the report
        self.dest_state = dest_state  # absent | empty | installed | none
        self.verify = verify
        self.noop = noop          # expected "noop" in zipdeploy's JSON, or None
        self.json_out = json_out
        self.ref = ref            # key into REFERENCE
        self.samples = []         # timed runs: dicts
        self.errors = []


def build_tools(pkg, setup, rip, zd, zd_flags, slow, capped=False):
    sh = ["sh", "-c"]
    tools = [
        Tool("shell", "verified shell (curl + sha256sum + unzip)",
             lambda c: sh + ['curl -fsS "$1" -o "$2" && echo "$3  $2" | sha256sum -c --quiet && '
                             'unzip -q -o "$2" -d "$4"', "sh", c["url"], c["tmpzip"], c["sha256"], c["dest"]],
             'curl -fsS URL -o TMP.zip && echo "HEX  TMP.zip" | sha256sum -c --quiet && unzip -q -o TMP.zip -d DEST',
             ref="shell"),
    ]
    if pkg == "tiny":
        tools.append(Tool("plain", "plain curl + unzip (no check)",
                          lambda c: sh + ['curl -fsS "$1" -o "$2" && unzip -q -o "$2" -d "$3"', "sh", c["url"],
                                          c["tmpzip"], c["dest"]],
                          "curl -fsS URL -o TMP.zip && unzip -q -o TMP.zip -d DEST"))
    tools += [
        Tool("python", "python zipfile (urllib + hashlib + extractall)",
             lambda c: [sys.executable, "-c", PY_ZIPFILE, c["url"], c["sha256"], c["dest"], c["tmpdir"]],
             "python3 -c '<urllib download to a temp file, hashlib sha256, zipfile.ZipFile(f).extractall(DEST)>'",
             ref="python"),
        Tool("bsdtar", "bsdtar stream (no check)",
             lambda c: sh + ['curl -fsS "$1" | bsdtar -xf - -C "$2"', "sh", c["url"], c["dest"]],
             "curl -fsS URL | bsdtar -xf - -C DEST", dest_state="empty", ref="bsdtar"),
        Tool("ripunzip", "ripunzip (parallel, no check)",
             lambda c: [rip, "unzip-uri", c["url"], "-d", c["dest"]],
             "ripunzip unzip-uri URL -d DEST", dest_state="empty", ref="ripunzip"),
        Tool("floor", "write floor (cp -a of the extracted tree)",
             lambda c: ["cp", "-a", c["srctree"], c["dest"]],
             "cp -a EXTRACTED DEST (same filesystem, warm cache)", ref="floor"),
    ]
    if pkg in ("php-app", "assets"):  # what being on disk costs a plain copy: the floor of --sync
        tools.append(Tool("floor-sync", "write floor + sync (cp -a, then syncfs)",
                          lambda c: sh + ['cp -a "$1" "$2" && sync -f "$2"', "sh", c["srctree"], c["dest"]],
                          "cp -a EXTRACTED DEST && sync -f DEST"))
    if "bsdtar" in setup.unavailable:
        tools = [t for t in tools if t.key != "bsdtar"]
    if rip is None:
        tools = [t for t in tools if t.key != "ripunzip"]
    if zd:
        extra = [f for f in ("--quiet", "--json") if f in zd_flags]
        use_json = "--json" in zd_flags

        def zd_argv(url_key, more=()):
            return lambda c: [zd, "--url", c[url_key], "--sha256", c["sha256"], "--dest", c["dest"], *extra, *more]

        shown = f"zipdeploy --url URL --sha256 HEX --dest DEST {' '.join(extra)}"
        tools.append(Tool("zipdeploy", "**zipdeploy**", zd_argv("url"), shown, noop=False, json_out=use_json))
        if "--sync" in zd_flags:
            tools.append(Tool("zd-sync", "zipdeploy --sync (power-cut safe)", zd_argv("url", ["--sync"]),
                              shown + " --sync", noop=False, json_out=use_json))
        tools.append(Tool("zd-redeploy", "zipdeploy redeploy (same digest, installed)", zd_argv("url"),
                          shown + "   (into DEST already holding that digest)", dest_state="installed",
                          noop=True, json_out=use_json))
        if pkg == "many":  # memory per entry: from a local path (no streaming) as well as over HTTP
            tools.append(Tool("zd-local", "zipdeploy from a local path", zd_argv("pkgfile"),
                              shown.replace("URL", "PKG.zip"), noop=False, json_out=use_json))
    if pkg in make_packages.DERIVED:
        # Another writer's layout of a package measured in full above: zipdeploy only.
        tools = [t for t in tools if t.key == "zipdeploy"]
    if slow:
        tools.append(Tool("slow-curl", "/slow/ 50 MiB/s: curl download only",
                          lambda c: ["curl", "-fsS", c["slow_url"], "-o", "/dev/null"],
                          "curl -fsS URL/slow/PKG -o /dev/null", dest_state="none", verify=False))
        if zd:
            # One connection, as curl's: the row measures what streaming
            # extraction adds to the download (the /rate25/ rows measure
            # several connections).
            tools.append(Tool("slow-zd", "/slow/ 50 MiB/s: zipdeploy --connections 1",
                              zd_argv("slow_url", ["--connections", "1"]),
                              shown.replace("URL", "URL/slow/PKG") + " --connections 1", noop=False,
                              json_out=use_json))
    if capped:
        # Issue 16 item 3: a server capping each connection at 25 MiB/s.
        if rip is not None:
            tools.append(Tool("rate-rip", "/rate25/ 25 MiB/s per connection: ripunzip",
                              lambda c: [rip, "unzip-uri", c["rate_url"], "-d", c["dest"]],
                              "ripunzip unzip-uri URL/rate25/PKG -d DEST", dest_state="empty"))
        if zd:
            for key, where, url_key in (("rate", "/rate25/ 25 MiB/s per connection", "rate_url"),
                                        ("norange", "/norange25/ 25 MiB/s, no ranges", "norange_url")):
                place = "URL" + where.split(" ")[0] + "PKG"
                tools.append(Tool(f"{key}-zd", f"{where}: zipdeploy", zd_argv(url_key),
                                  shown.replace("URL", place), noop=False, json_out=use_json))
                tools.append(Tool(f"{key}-zd1", f"{where}: zipdeploy --connections 1",
                                  zd_argv(url_key, ["--connections", "1"]),
                                  shown.replace("URL", place) + " --connections 1", noop=False,
                                  json_out=use_json))
    return tools


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------
SPAWN = None  # the compiled spawn.c, when it could be built
# what the tools see: no proxy (everything is on 127.0.0.1), no zipdeploy settings from our environment
CHILD_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
             and not k.startswith("ZIPDEPLOY_") and k not in ("PACKAGE_ZIP_URL", "PACKAGE_SHA256", "PACKAGE_DIR")}


def timed(argv, out_path, err_path):
    """Run argv once: wall, user+sys CPU (of it and its children) and peak RSS (ru_maxrss, KiB: the largest
    single process of the tree).  Goes through spawn.c when built, so the peak RSS is the tool's own."""
    os.sync()  # earlier writeback must not bleed into this measurement
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        if SPAWN:
            res = os.path.join(CACHE, "spawn.result")
            if os.path.exists(res):
                os.unlink(res)
            p = subprocess.run([SPAWN, res, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                               env=CHILD_ENV)
            try:
                with open(res) as f:
                    wall_ns, user_us, sys_us, rss, status = (int(x) for x in f.read().split())
            except (OSError, ValueError):
                raise RuntimeError(f"spawn helper failed (status {p.returncode}) running {argv[0]}")
            user, sys_ = user_us / 1e6, sys_us / 1e6
            wall = wall_ns / 1e9
        else:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=CHILD_ENV)
            _, st, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = status = os.waitstatus_to_exitcode(st)
            user, sys_, rss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    return {"wall": wall, "cpu": user + sys_, "user": user, "sys": sys_, "rss_kib": rss, "status": status}


def tree_stats(root):
    files = total = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files += 1
                    total += e.stat(follow_symlinks=False).st_size
    return files, total


def rm_rf(*paths):
    paths = [p for p in paths if os.path.lexists(p)]
    if paths:
        run(["rm", "-rf", "--", *paths])


class Bench:
    def __init__(self, args, setup, fs, server, rows, rip, zd, zd_flags):
        self.args, self.setup, self.fs, self.server = args, setup, fs, server
        self.rows, self.rip, self.zd, self.zd_flags = rows, rip, zd, zd_flags
        self.results = {}   # pkg -> [Tool]
        self.rounds = {}    # pkg -> number of timed rounds
        self.logdir = os.path.join(CACHE, "logs", "runs")
        os.makedirs(self.logdir, exist_ok=True)

    def ctx(self, pkg, tool):
        base = os.path.join(self.fs.root, "dest", tool.key)
        return {"url": f"{self.server.base}/{pkg}.zip", "slow_url": f"{self.server.base}/slow/{pkg}.zip",
                "rate_url": f"{self.server.base}/rate25/{pkg}.zip",
                "norange_url": f"{self.server.base}/norange25/{pkg}.zip",
                "sha256": self.rows[pkg]["sha256"], "base": base, "dest": os.path.join(base, "app"),
                "pkgfile": os.path.join(self.args.pkgdir, f"{pkg}.zip"),
                "state": os.path.join(base, ".app.zipdeploy"),
                "tmpdir": os.path.join(self.fs.root, "tmp"),
                "tmpzip": os.path.join(self.fs.root, "tmp", f"{tool.key}.zip"),
                "srctree": os.path.join(self.fs.root, "src", pkg)}

    def prepare(self, pkg, tool, c):
        if tool.dest_state == "installed":
            if not os.path.isdir(c["dest"]):
                rm_rf(c["base"])
                os.makedirs(c["base"])
                r = timed(tool.argv(c), os.devnull, os.path.join(self.logdir, f"{pkg}-{tool.key}-install.err"))
                if r["status"] != 0:
                    raise RuntimeError(f"could not install {pkg} for the redeploy runs (status {r['status']})")
            return
        rm_rf(c["base"], c["tmpzip"])
        os.makedirs(c["base"])
        if tool.dest_state == "empty":
            os.makedirs(c["dest"])

    def check(self, pkg, tool, c, r, out_path, err_path):
        problems = []
        if r["status"] != 0:
            with open(err_path, errors="replace") as f:
                problems.append(f"exit status {r['status']}: {f.read().strip()[-300:]}")
        if tool.verify and not problems:
            want = (self.rows[pkg]["files"], self.rows[pkg]["uncompressed_bytes"])
            got = tree_stats(c["dest"]) if os.path.isdir(c["dest"]) else (0, 0)
            if got != want:
                problems.append(f"wrong tree: {got[0]} files / {got[1]} bytes, expected {want[0]} / {want[1]}")
        if tool.json_out:
            r["json"] = None
            with open(out_path, errors="replace") as f:
                for line in f.read().splitlines():
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        r["json"] = obj
            if r["json"] is None:
                if r["status"] == 0:
                    problems.append("no JSON report on stdout")
            elif tool.noop is not None and "noop" in r["json"] and bool(r["json"]["noop"]) != tool.noop:
                problems.append(f"noop is {r['json']['noop']}, expected {tool.noop}")
        return problems

    def one(self, pkg, tool, timed_round):
        c = self.ctx(pkg, tool)
        try:
            self.prepare(pkg, tool, c)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            msg = f"{pkg} / {tool.label}: preparing the destination failed: {e}"
            tool.errors.append(msg)
            loud(f"RUN FAILED: {msg}")
            return None
        out_path = os.path.join(self.logdir, f"{pkg}-{tool.key}.out")
        err_path = os.path.join(self.logdir, f"{pkg}-{tool.key}.err")
        r = timed(tool.argv(c), out_path, err_path)
        problems = self.check(pkg, tool, c, r, out_path, err_path)
        if tool.dest_state != "installed":
            rm_rf(c["base"], c["tmpzip"])
        if problems:
            msg = f"{pkg} / {tool.label}: " + "; ".join(problems)
            tool.errors.append(msg)
            loud(f"RUN FAILED: {msg}")
        elif timed_round:
            tool.samples.append(r)
        return r

    def package(self, pkg):
        row = self.rows[pkg]
        slow = pkg in self.args.slow.split(",")
        capped = pkg in self.args.capped.split(",")
        tools = build_tools(pkg, self.setup, self.rip, self.zd, self.zd_flags, slow, capped)
        self.results[pkg] = tools
        src = os.path.join(self.fs.root, "src", pkg)
        rm_rf(src)
        run(["unzip", "-q", os.path.join(self.args.pkgdir, f"{pkg}.zip"), "-d", src])  # for the write floor
        runs = self.args.runs
        log(f"{pkg}: {row['files']} files, {row['uncompressed_bytes'] / MIB:.0f} MiB, zip "
            f"{row['zip_bytes'] / MIB:.1f} MiB; {len(tools)} tools x (1 warm-up + {runs}) runs")
        t0 = time.monotonic()
        for rnd in range(runs + 1):
            k = rnd % len(tools)
            order = tools[k:] + tools[:k]  # rotate so that no tool always follows the same one
            for tool in order:
                r = self.one(pkg, tool, rnd > 0)
                if r and self.args.verbose:
                    log(f"  {'warm-up' if rnd == 0 else f'run {rnd}'} {tool.key:12s} wall {r['wall']:.3f} s "
                        f"cpu {r['cpu']:.3f} s rss {r['rss_kib'] / 1024:.0f} MiB")
            log(f"{pkg}: {'warm-up' if rnd == 0 else f'round {rnd}/{runs}'} done "
                f"[{time.monotonic() - t0:.0f} s]")
        self.rounds[pkg] = runs
        for tool in tools:  # the redeploy destination and the source tree
            rm_rf(self.ctx(pkg, tool)["base"])
        rm_rf(src)

    def profile(self, pkg):
        """strace -c -f of one zipdeploy run (not part of the timed samples)."""
        if not self.zd or not shutil.which("strace"):
            return None
        tool = build_tools(pkg, self.setup, None, self.zd, self.zd_flags, False)
        tool = next(t for t in tool if t.key == "zipdeploy")
        c = self.ctx(pkg, tool)
        self.prepare(pkg, tool, c)
        path = os.path.join(CACHE, "logs", f"strace-{pkg}.txt")
        r = timed(["strace", "-c", "-f", "-o", path, *tool.argv(c)], os.devnull, os.devnull)
        rm_rf(c["base"])
        if r["status"] != 0:
            return None
        with open(path) as f:
            return f.read()


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------
def median(xs):
    return statistics.median(xs) if xs else None


def summary(tool):
    s = tool.samples
    return {"wall": median([x["wall"] for x in s]), "cpu": median([x["cpu"] for x in s]),
            "rss": max((x["rss_kib"] for x in s), default=None), "n": len(s)}


def paired(a, b):
    """Median over rounds of a/b, a and b timed in the same round; and the ratio of the medians."""
    n = min(len(a.samples), len(b.samples))
    per_round = [a.samples[i]["wall"] / b.samples[i]["wall"] for i in range(n) if b.samples[i]["wall"] > 0]
    ma, mb = summary(a)["wall"], summary(b)["wall"]
    return (median(per_round), ma / mb if ma and mb else None)


def machine():
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (`nproc` {capture(['nproc']) or '?'}, {cpu}), {mem} RAM, Linux {platform.release()}"


def git_describe():
    head = capture(["git", "-C", REPO, "log", "-1", "--format=%h %s"])
    dirty = capture(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    return f"`{head}`" + (" (with uncommitted changes)" if dirty else "")


def report(args, setup, fs, server, bench, rip, zd, started, load_start, command, profile_text):
    L = []
    now = datetime.datetime.now(datetime.timezone.utc)
    L.append("# zipdeploy benchmarks\n")
    L.append(f"Produced by `{command}` (see [examples/bench/](examples/bench/)).\n")
    L.append(f"- date: {now:%Y-%m-%d %H:%M} UTC; the run took {(time.monotonic() - started) / 60:.1f} min")
    L.append(f"- machine: {machine()}; load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
             "end (other jobs share the machine: compare ratios within this run, not absolute times across runs)")
    L.append(f"- zipdeploy: commit {git_describe()}, " + (
        f"`{rel(zd)}`" if zd else f"**UNAVAILABLE — {setup.unavailable.get('zipdeploy')}**"))
    L.append(f"- destinations: {fs.description}")
    L.append(f"- server: {server.description}")
    L.append(f"- runs: {args.runs} timed runs per tool and package after one warm-up round; the tools alternate "
             "round-robin (the order rotated each round); every run goes into a fresh destination (removed "
             "before and after, untimed) and starts after a `sync`; page cache warm (nothing dropped)")
    L.append("- measures: wall = elapsed time of the command; CPU = user + sys of the command and its children "
             "(`os.wait4`); peak RSS = `ru_maxrss`, the largest single process of the command (not the sum over a "
             "pipeline), max over the runs; times are medians")
    vers = [f"curl {first_line(capture(['curl', '--version'])).split()[1]}",
            " ".join(first_line(capture(["unzip", "-v"])).split()[:2])]
    if shutil.which("bsdtar"):
        vers.append(first_line(capture(["bsdtar", "--version"])).split(" - ")[0])
    if rip:
        vers.append(first_line(capture([rip, "--version"])))
    vers.append(f"Python {platform.python_version()}")
    L.append(f"- tools: {', '.join(vers)}")
    for key, why in setup.unavailable.items():
        L.append(f"- **{key} UNAVAILABLE: {why}**")
    L.extend(f"- {n}" for n in setup.notes)
    L.append("")

    L.append("## Packages\n")
    L.append(f"Generated by `python3 examples/bench/make_packages.py --seed {args.seed}` "
             f"(generator {make_packages.GENERATOR_VERSION}).\n")
    L.append("| package | zip | entries | files | uncompressed | sha256 |")
    L.append("|---|--:|--:|--:|--:|---|")
    for pkg, row in bench.rows.items():
        L.append(f"| {pkg} | {row['zip_bytes'] / MIB:.1f} MiB | {row['entries']:,} | {row['files']:,} | "
                 f"{row['uncompressed_bytes'] / MIB:.1f} MiB | `{row['sha256'][:16]}…` |")
    L.append("")

    checks = []
    for pkg, tools in bench.results.items():
        by = {t.key: t for t in tools}
        zdt = by.get("zipdeploy")
        zsum = summary(zdt) if zdt else None
        L.append(f"## {pkg}\n")
        L.append("| tool | wall s | CPU s | peak RSS MiB | wall tool / zipdeploy | issue-6 reference wall s / RSS MiB |")
        L.append("|---|--:|--:|--:|--:|--:|")
        for t in tools:
            s = summary(t)
            ratio = "–"
            if zsum and zsum["wall"] and s["wall"] is not None and t.key != "zipdeploy":
                ratio = f"{s['wall'] / zsum['wall']:.2f}×"
            elif t.key == "zipdeploy" and s["wall"] is not None:
                ratio = "1"
            ref = REFERENCE.get(pkg, {}).get(t.ref) if t.ref else None
            reft = "–" if not ref else f"{fmt_s(ref[0])} / {ref[1] if ref[1] is not None else '–'}"
            err = f" **({len(t.errors)} FAILED runs)**" if t.errors else ""
            if s["n"] == 0:
                L.append(f"| {t.label}{err} | – | – | – | – | {reft} |")
                continue
            L.append(f"| {t.label}{err} | {fmt_s(s['wall'])} | {fmt_s(s['cpu'])} | {s['rss'] / 1024:.1f} | {ratio} | "
                     f"{reft} |")
        for key in ("ripunzip", "zipdeploy", "bsdtar"):
            if key in bench.setup.unavailable and key not in by:
                L.append(f"| {key} | **unavailable: {bench.setup.unavailable[key]}** | | | | |")
        L.append("")
        if zdt:
            checks += target_checks(pkg, by)

    L.append("## Targets (issue 6)\n")
    if not checks:
        L.append("No target could be checked (zipdeploy unavailable).\n")
    else:
        L.append("Ratios are zipdeploy / other tool. The checked value is the *paired* ratio: the median over the "
                 "rounds of the ratio of the two runs made in the same round; the ratio of the medians of the tables "
                 "above is in parentheses.\n")
        L.append("| target | measured | limit | result |")
        L.append("|---|--:|--:|---|")
        for name, p, m, limit, unit in checks:
            lim = "–" if limit is None else f"≤ {limit}{unit}"
            if p is None:
                L.append(f"| {name} | – | {lim} | n/a |")
                continue
            if unit == "×":
                val = f"{p:.3f}×" + ("" if m is None else f" ({m:.3f}×)")
            else:
                val = f"{p:.1f}{unit}"
            verdict = "info" if limit is None else "**PASS**" if p <= limit else "**FAIL**"
            L.append(f"| {name} | {val} | {lim} | {verdict} |")
        L.append("")

    split = []
    for pkg, tools in bench.results.items():
        for t in tools:
            js = [x.get("json") for x in t.samples if isinstance(x.get("json"), dict)]
            tm = [j.get("timings_ms") for j in js if isinstance(j.get("timings_ms"), dict)]
            if tm:
                keys = [k for k in tm[0] if all(isinstance(x.get(k), (int, float)) for x in tm)]
                d = {k: median([x[k] for x in tm]) for k in keys}
                if any("streamed" in j for j in js):  # did extraction overlap the download?
                    d["streamed"] = f"{sum(1 for j in js if j.get('streamed') is True)}/{len(js)}"
                why = sorted({str(j["stream_fallback"]) for j in js if j.get("stream_fallback")})
                if why:
                    d["stream fallback"] = "; ".join(why)[:120]
                split.append((pkg, t.label, d))
    if split:
        keys = []
        for _, _, d in split:
            keys += [k for k in d if k not in keys]
        L.append("## Where zipdeploy's time goes (its `--json` report: median ms per stage; streamed = runs whose "
                 "extraction overlapped the download)\n")
        L.append("| package | row | " + " | ".join(keys) + " |")
        L.append("|---|---|" + "--:|" * len(keys))
        for pkg, label, d in split:
            cells = [("–" if k not in d else str(round(d[k])) if isinstance(d[k], (int, float)) else d[k]) for k in keys]
            L.append(f"| {pkg} | {label} | " + " | ".join(cells) + " |")
        L.append("")
    if profile_text:
        L.append("## strace -c -f of one zipdeploy php-app run (not timed; strace slows it down)\n")
        L.append("```")
        lines = profile_text.strip().splitlines()
        L.extend(lines[:16] + (["..."] if len(lines) > 17 else []) + lines[-1:])
        L.append("```\n")

    L.append("## Commands\n")
    seen = set()
    for tools in bench.results.values():
        for t in tools:
            if t.label not in seen:
                seen.add(t.label)
                L.append(f"- {t.label}: `{t.shown}`")
    L.append("\nURL is the package on the local server, TMP.zip and DEST are on the destination filesystem. "
             "The write floor copies a tree extracted beforehand on the same filesystem: no tool that writes the "
             "same files can be much faster.\n")
    errors = [e for tools in bench.results.values() for t in tools for e in t.errors]
    if errors:
        L.append("## FAILED runs — this run is not valid\n")
        L.extend(f"- {e}" for e in errors)
        L.append("")
    return "\n".join(L), errors


def target_checks(pkg, by):
    """(name, value, value of medians, limit or None for an informative line, unit)."""
    zd = by["zipdeploy"]
    out = []

    def ratio(name, a, b, limit):
        if a in by and b in by and by[a].samples and by[b].samples:
            p, m = paired(by[a], by[b])
            out.append((name, p, m, limit, "×"))
        else:
            missing = b if b not in by or not by[b].samples else a
            out.append((f"{name} ({missing} unavailable)", None, None, limit, "×"))

    if pkg == "php-app":
        ratio("php-app: zipdeploy / verified shell", "zipdeploy", "shell", 0.6)
        ratio("php-app: zipdeploy / ripunzip (issue 16: 0.7, was 1.0)", "zipdeploy", "ripunzip", 0.7)
        ratio("php-app: redeploy of the installed digest / full deploy", "zd-redeploy", "zipdeploy", 0.05)
        ratio("php-app: zipdeploy --sync / zipdeploy (issue 16)", "zd-sync", "zipdeploy", 1.3)
    elif pkg == "assets":
        ratio("assets: zipdeploy / verified shell", "zipdeploy", "shell", 0.25)
        ratio("assets: zipdeploy / ripunzip (issue 16: 0.75, was 1.0)", "zipdeploy", "ripunzip", 0.75)
        ratio("assets: zipdeploy --sync / zipdeploy (issue 16)", "zd-sync", "zipdeploy", 1.3)
    elif pkg == "tiny":
        ratio("tiny: zipdeploy / plain curl + unzip", "zipdeploy", "plain", 1.5)
    elif pkg == "many":
        # A package on a mounted volume (or file://) is no slower to deploy than over HTTP. Both create
        # the same 168,395 files, so the two times are within noise of each other: the limit allows the
        # 5 % the other no-regression row allows (at 1.0 the row passed or failed by chance).
        ratio("many (200,000 entries): zipdeploy from a local path / over HTTP (no slower, within 5 % noise)",
              "zd-local", "zipdeploy", 1.05)
    if "floor-sync" in by and by["floor-sync"].samples and by["floor"].samples:
        p, m = paired(by["floor-sync"], by["floor"])
        out.append((f"{pkg}: write floor + sync / write floor (informative: what --sync costs a plain copy on "
                    "this device)", p, m, None, "×"))
    if "slow-zd" in by:
        if pkg == "assets":
            ratio("assets at 50 MiB/s: zipdeploy / curl download only", "slow-zd", "slow-curl", 1.15)
        elif pkg == "php-app-bsdtar":
            ratio("php-app-bsdtar (data descriptors) at 50 MiB/s: zipdeploy / curl download only", "slow-zd",
                  "slow-curl", 1.15)
        elif by["slow-zd"].samples and by["slow-curl"].samples:
            p, m = paired(by["slow-zd"], by["slow-curl"])
            out.append((f"{pkg} at 50 MiB/s: zipdeploy / curl download only (informative: writing the tree, not "
                        "the network, is the bottleneck here)", p, m, None, "×"))
    if "rate-zd" in by:
        ratio(f"{pkg} at 25 MiB/s per connection: zipdeploy / zipdeploy --connections 1", "rate-zd", "rate-zd1",
              0.35)
        if "rate-rip" in by and by["rate-rip"].samples and by["rate-zd"].samples:
            p, m = paired(by["rate-zd"], by["rate-rip"])
            out.append((f"{pkg} at 25 MiB/s per connection: zipdeploy / ripunzip (informative)", p, m, None, "×"))
        ratio(f"{pkg} at 25 MiB/s, server without ranges: zipdeploy / zipdeploy --connections 1 (no regression)",
              "norange-zd", "norange-zd1", 1.05)
    zd_rows = ("zipdeploy", "zd-sync", "zd-redeploy", "slow-zd", "zd-local", "rate-zd", "rate-zd1", "norange-zd",
               "norange-zd1")
    rss = max((x["rss_kib"] for t in by.values() if t.key in zd_rows for x in t.samples), default=None)
    # Issue 16: memory flat in the entry count (<= 16 MiB for php-app, <= 32 MiB at 200,000 entries).
    limit = 16 if pkg == "php-app" else 32
    out.append((f"{pkg}: zipdeploy peak RSS (all its rows)", None if rss is None else rss / 1024, None, limit,
                " MiB"))
    if pkg == "many":
        for key, how in (("zd-local", "from a local path"), ("zipdeploy", "over HTTP (streamed)")):
            peak = max((x["rss_kib"] for x in by[key].samples), default=None) if key in by else None
            out.append((f"many (200,000 entries) {how}: zipdeploy peak RSS", None if peak is None else peak / 1024,
                        None, 32, " MiB"))
    return out


# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool and package (default 5)")
    ap.add_argument("--only", default="php-app,assets,tiny,php-app-bsdtar,many",
                    help="packages (default php-app,assets,tiny,php-app-bsdtar,many)")
    ap.add_argument("--out", help="report file (default BENCHMARKS.md at the repository root)")
    ap.add_argument("--quick", action="store_true", help="tiny package only, 3 runs, report to <target>/bench/quick.md")
    ap.add_argument("--seed", type=int, default=make_packages.DEFAULT_SEED, help="package seed")
    ap.add_argument("--slow", default="php-app,assets,php-app-bsdtar",
                    help="packages also fetched from the 50 MiB/s /slow/ location "
                         "(default php-app,assets,php-app-bsdtar)")
    ap.add_argument("--capped", default="assets",
                    help="packages also fetched from the 25 MiB/s-per-connection /rate25/ and /norange25/ "
                         "locations (default assets)")
    ap.add_argument("--zipdeploy-bin", metavar="PATH", help="use this binary instead of building the example")
    ap.add_argument("--no-zipdeploy", action="store_true", help="measure the other tools only")
    ap.add_argument("--no-ripunzip", action="store_true", help="do not install or run ripunzip")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get or cargo install")
    ap.add_argument("--host-fs", action="store_true", help="do not mount an ext4 image; use the host filesystem")
    ap.add_argument("--python-server", action="store_true", help="serve with Python's http.server, not nginx")
    ap.add_argument("--fs-gib", type=int, default=6, help="size of the ext4 image in GiB (default 6)")
    ap.add_argument("--profile", action="store_true", help="append strace -c -f of one zipdeploy php-app run")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every run")
    args = ap.parse_args()
    if args.quick:
        args.only, args.runs = "tiny", 3
        args.out = args.out or os.path.join(CACHE, "quick.md")
    args.out = args.out or os.path.join(REPO, "BENCHMARKS.md")
    packages = [p for p in args.only.split(",") if p]
    for p in packages:
        if p not in make_packages.PACKAGES:
            ap.error(f"unknown package {p}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    env_prefix = f"CARGO_TARGET_DIR={shlex.quote(os.environ['CARGO_TARGET_DIR'])} " \
        if os.environ.get("CARGO_TARGET_DIR") else ""
    command = env_prefix + "python3 examples/bench/run.py" + ("" if len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:]))
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    os.makedirs(CACHE, exist_ok=True)

    setup = Setup(args)
    fs = BenchFs(args)
    server = None

    def cleanup():
        if server:
            server.stop()
        fs.teardown()

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        try:
            setup.tools()
            if "bsdtar" in setup.unavailable:
                for p in [p for p in packages if p in make_packages.DERIVED]:
                    loud(f"{p} skipped: bsdtar writes it, and bsdtar is unavailable")
                    packages.remove(p)
            global SPAWN
            SPAWN = setup.spawner()
            base = timed(["true"], os.devnull, os.devnull)["rss_kib"] / 1024
            setup.notes.append(f"peak RSS floor of the measuring method: `true` measures {base:.1f} MiB ("
                               + ("forked from examples/bench/spawn.c" if SPAWN else
                                  "**forked from the Python harness: small RSS figures are the harness's**") + ")")
            rip = setup.ripunzip()
            zd, zd_flags = setup.zipdeploy()
            args.pkgdir = os.path.join(CACHE, "pkgs")
            log(f"packages in {args.pkgdir}")
            rows = make_packages.ensure(args.pkgdir, args.seed, packages, log=log)
            fs.setup()
            server = Server(args, args.pkgdir, f"{packages[0]}.zip")
            server.start()
        except (OSError, subprocess.CalledProcessError, SystemExit) as e:
            loud(f"set-up failed: {e}")
            return 2
        bench = Bench(args, setup, fs, server, rows, rip, zd, zd_flags)
        for pkg in packages:
            bench.package(pkg)
        profile_text = bench.profile("php-app") if args.profile and "php-app" in packages else None
        text, errors = report(args, setup, fs, server, bench, rip, zd, started, load_start, command, profile_text)
    finally:
        cleanup()
    raw = os.path.join(CACHE, "results", time.strftime("%Y%m%d-%H%M%S") + ".json")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw, "w") as f:
        json.dump({"command": command, "packages": rows,
                   "results": {p: {t.key: {"label": t.label, "samples": t.samples, "errors": t.errors}
                                   for t in tools} for p, tools in bench.results.items()}}, f, indent=1)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"report written to {args.out}; raw samples in {raw}")
    if errors:
        loud(f"{len(errors)} run(s) FAILED: the measurements are not valid")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
