"""Tests of the ctypes wrapper against a real HTTP server.

Run by tests/ffi.rs (`cargo test --test ffi`), which serves the packages and
passes their URLs in the environment; without them the tests fail rather
than skip.
"""

import ctypes
import fcntl
import json
import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import zipdeploy


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run these tests with `cargo test --test ffi`")
    return value


class DeployTest(unittest.TestCase):
    def setUp(self):
        self.url = env("ZIPDEPLOY_TEST_URL")
        self.url_v2 = env("ZIPDEPLOY_TEST_URL_V2")
        self.url_404 = env("ZIPDEPLOY_TEST_URL_404")
        self.sha = env("ZIPDEPLOY_TEST_SHA256")
        self.key = env("ZIPDEPLOY_TEST_MINISIGN_KEY")
        self.url_stall = env("ZIPDEPLOY_TEST_URL_STALL")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dest = pathlib.Path(tmp.name) / "app"

    def version(self) -> str:
        return (self.dest / "VERSION").read_text()

    def test_version_is_the_crate_version(self):
        self.assertRegex(zipdeploy.version(), r"^\d+\.\d+\.\d+")

    def test_deploy_reports_and_redeploys_as_noop(self):
        events = []
        report = zipdeploy.deploy(
            self.url,
            self.dest,
            self.sha,
            timeout=30,
            retries=0,
            connections=2,
            headers={"X-Test": "python"},
            max_download=1 << 20,
            progress=events.append,
        )
        self.assertIsInstance(report, zipdeploy.Report)
        self.assertEqual(report.digest, self.sha)
        self.assertFalse(report.noop)
        self.assertEqual((report.entries, report.files), (5, 4))
        self.assertEqual(report.bytes_downloaded, report.package_size)
        self.assertEqual(report.dest, str(self.dest))
        self.assertGreaterEqual(report.total_ms, report.fetch_ms)
        self.assertEqual(self.version(), "1")
        self.assertEqual([e.stage for e in events][0], "fetch")
        self.assertEqual(events[-1].stage, "install")
        self.assertTrue(all(isinstance(e, zipdeploy.Progress) for e in events))
        self.assertIsInstance(report.streamed, bool)
        self.assertIsNone(report.signed_by)  # absent is None, not ""
        self.assertEqual(report.warnings, [])
        lib = zipdeploy.load_library()
        self.assertEqual(lib.zipdeploy_report_warning_count(None), 0)
        self.assertEqual(ctypes.string_at(lib.zipdeploy_report_warning(None, 0)), b"")

        again = zipdeploy.deploy(self.url, self.dest, self.sha)
        self.assertTrue(again.noop)
        self.assertEqual(again.bytes_downloaded, 0)

    def test_digest_mismatch_raises_code_40_and_keeps_dest(self):
        zipdeploy.deploy(self.url, self.dest)
        with self.assertRaises(zipdeploy.DigestError) as caught:
            zipdeploy.deploy(self.url_v2, self.dest, "0" * 64)
        err = caught.exception
        self.assertIsInstance(err, zipdeploy.ZipDeployError)
        self.assertEqual((err.code, err.cls), (40, 4))
        self.assertIn("0" * 64, err.message)
        self.assertEqual(self.version(), "1")

    def test_a_truthy_progress_return_cancels(self):
        zipdeploy.deploy(self.url, self.dest)
        calls = []

        def stop(p):
            calls.append(p)
            return True

        with self.assertRaises(zipdeploy.DeployCancelled) as caught:
            zipdeploy.deploy(self.url_v2, self.dest, progress=stop)
        self.assertEqual((caught.exception.code, caught.exception.cls), (90, 9))
        self.assertEqual(len(calls), 1)
        self.assertEqual(self.version(), "1")

    def test_a_stalled_download_is_cancelled_promptly_or_cut_by_the_speed_limit(self):
        stalled = env("ZIPDEPLOY_TEST_URL_STALLED")
        started = time.monotonic()
        calls = []

        def give_up_after_400ms(p):
            calls.append(p)
            return time.monotonic() - started > 0.4

        with self.assertRaises(zipdeploy.DeployCancelled):
            zipdeploy.deploy(stalled, self.dest, retries=0, progress=give_up_after_400ms)
        self.assertLess(time.monotonic() - started, 1.4)
        self.assertGreaterEqual(len(calls), 3, "heartbeats while the server is silent")
        self.assertFalse(self.dest.exists())

        started = time.monotonic()
        with self.assertRaises(zipdeploy.NetworkError) as caught:
            zipdeploy.deploy(stalled, self.dest, retries=0, speed_limit=(1000, 0.5))
        self.assertEqual(caught.exception.code, 32)
        self.assertIn("low speed", str(caught.exception))
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(self.dest.exists())

    def test_ctrl_c_cancels_a_deploy_and_a_rollback_promptly(self):
        # Python runs the SIGINT handler at the next Python code: the entry
        # of the progress callback, where its KeyboardInterrupt used to be
        # printed as "ignored" while the deploy went on (or, without a
        # progress callable, only after the whole deploy).
        stalled = env("ZIPDEPLOY_TEST_URL_STALLED")

        def interrupted(run):
            timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
            started = time.monotonic()
            timer.start()
            try:
                with self.assertRaises(KeyboardInterrupt):
                    run()
            finally:
                timer.join()
            return time.monotonic() - started

        for progress in (None, lambda _p: None):
            with self.subTest(progress=progress):
                took = interrupted(
                    lambda: zipdeploy.deploy(
                        stalled, self.dest, retries=0, stall_timeout=20, progress=progress
                    )
                )
                self.assertLess(took, 1.5)
                self.assertFalse(self.dest.exists())
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

        # A rollback waiting for a deploy's lock.
        zipdeploy.deploy(self.url, self.dest)
        lock = os.open(self.dest.parent / ".app.zipdeploy" / "lock", os.O_RDWR)
        # Released after 3 s, so that a rollback deaf to Ctrl-C ends too.
        release = threading.Timer(3, fcntl.flock, (lock, fcntl.LOCK_UN))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            release.start()
            took = interrupted(lambda: zipdeploy.rollback(self.dest))
        finally:
            release.cancel()
            release.join()
            os.close(lock)
        self.assertLess(took, 1.5)
        self.assertEqual(self.version(), "1")

    def test_an_exception_in_progress_cancels_and_propagates(self):
        def boom(_p):
            raise KeyError("boom")

        with self.assertRaises(KeyError):
            zipdeploy.deploy(self.url, self.dest, progress=boom)
        self.assertFalse(self.dest.exists())

    def test_an_exception_at_the_last_event_propagates_after_the_deploy(self):
        # The last event comes after activation: it cannot cancel, but a
        # Ctrl-C (or a bug) there must not be swallowed by a returned Report.
        stages = []

        def interrupt_at_install(p):
            stages.append(p.stage)
            if p.stage == "install":
                raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            zipdeploy.deploy(self.url, self.dest, progress=interrupt_at_install)
        self.assertEqual(stages[-1], "install")
        self.assertEqual(self.version(), "1", "the deploy had completed")

    def test_an_unchanged_package_is_not_modified(self):
        url = env("ZIPDEPLOY_TEST_URL_CONDITIONAL")
        first = zipdeploy.deploy(url, self.dest, retries=0)
        self.assertFalse(first.noop or first.not_modified)
        again = zipdeploy.deploy(url, self.dest, retries=0)
        self.assertTrue(again.noop and again.not_modified)
        self.assertEqual((again.bytes_downloaded, again.files), (0, 0))
        self.assertEqual(again.digest, self.sha)
        # A pinned digest is never conditional: a plain no-op.
        pinned = zipdeploy.deploy(url, self.dest, self.sha, retries=0)
        self.assertTrue(pinned.noop)
        self.assertFalse(pinned.not_modified)

    def test_http_404_raises_a_network_error(self):
        with self.assertRaises(zipdeploy.NetworkError) as caught:
            zipdeploy.deploy(self.url_404, self.dest, retries=0)
        self.assertEqual((caught.exception.code, caught.exception.cls), (30, 3))
        self.assertIn("404", str(caught.exception))
        self.assertFalse(self.dest.exists())

    def test_signed_package_sidecar_mirrors_and_cache(self):
        cache = self.dest.parent / "cache"
        report = zipdeploy.deploy(
            self.url_404,
            self.dest,
            mirrors=[self.url],
            sha256_from=self.url + ".sha256",
            minisign_key=self.key,
            cache=cache,
            cache_max_size=1 << 30,
            retries=0,
        )
        self.assertEqual(report.digest, self.sha)
        self.assertEqual(report.source, self.url)
        self.assertFalse(report.cache_hit)
        self.assertRegex(report.signed_by, r"^[0-9A-F]{16}$")
        self.assertTrue((cache / "sha256" / f"{self.sha}.zip").is_file())
        other = self.dest.parent / "other"
        again = zipdeploy.deploy(self.url, other, self.sha, minisign_key=self.key, cache=cache)
        self.assertTrue(again.cache_hit)
        self.assertEqual(again.bytes_downloaded, 0)
        # v2 is served with v1's signature: refused, code 41.
        with self.assertRaises(zipdeploy.DigestError) as caught:
            zipdeploy.deploy(
                self.url_v2, self.dest, minisign_key=self.key, minisign_sig=self.url + ".minisig"
            )
        self.assertEqual(caught.exception.code, 41)
        self.assertIn(report.signed_by, caught.exception.message)
        self.assertEqual(self.version(), "1")

    def test_status_and_rollback(self):
        self.assertIsNone(zipdeploy.status(self.dest).current)
        with self.assertRaises(zipdeploy.FilesystemError) as caught:
            zipdeploy.rollback(self.dest)
        self.assertEqual(caught.exception.code, 72)
        zipdeploy.deploy(self.url, self.dest)
        zipdeploy.deploy(self.url_v2, self.dest, keep=1)
        status = zipdeploy.status(self.dest)
        self.assertIsInstance(status, zipdeploy.Status)
        self.assertEqual(status.current.source, self.url_v2)
        self.assertEqual([r.digest for r in status.kept], [self.sha])
        self.assertGreater(status.current.installed_at, 1_600_000_000)
        back = zipdeploy.rollback(self.dest)
        self.assertEqual(back.current.digest, self.sha)
        self.assertEqual(self.version(), "1")
        self.assertEqual(len(back.kept), 1)
        zipdeploy.rollback(self.dest)
        self.assertEqual(self.version(), "2")

    def test_synced_deploy_and_rollback(self):
        zipdeploy.deploy(self.url, self.dest, sync=True)
        report = zipdeploy.deploy(self.url_v2, self.dest, keep=1, sync=True)
        self.assertFalse(report.noop)
        self.assertEqual(self.version(), "2")
        back = zipdeploy.rollback(self.dest, sync=True)
        self.assertEqual(back.current.digest, self.sha)
        self.assertEqual(self.version(), "1")
        self.assertEqual(len(back.kept), 1)

    def test_bad_arguments_raise_usage_errors(self):
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, "abc")
        self.assertEqual(caught.exception.code, 21)
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy("ftp://example.com/a.zip", self.dest)
        self.assertEqual(caught.exception.code, 20)
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, headers={"Bad Name": "x"})
        self.assertEqual(caught.exception.code, 23)
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, connections=0)
        self.assertEqual(caught.exception.code, 23)
        with self.assertRaises(zipdeploy.UsageError):
            zipdeploy.deploy("a\0b", self.dest)
        # A CA file is read before anything is fetched: missing, or no
        # certificate in it.
        with self.assertRaises(zipdeploy.FilesystemError) as caught:
            zipdeploy.deploy(self.url, self.dest, cacert=str(self.dest.parent / "missing.pem"))
        self.assertEqual(caught.exception.code, 70)
        not_pem = self.dest.parent / "not.pem"
        with open(not_pem, "w") as f:
            f.write("not a certificate\n")
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, cacert=[not_pem])
        self.assertEqual(caught.exception.code, 22)
        self.assertIn("not.pem", caught.exception.message)
        self.assertFalse(os.path.exists(self.dest))
        # A netrc file others can read is refused before anything is fetched.
        netrc = self.dest.parent / "netrc"
        with open(netrc, "w") as f:
            f.write("default login alice password s3cret\n")
        os.chmod(netrc, 0o644)
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, netrc_file=netrc)
        self.assertEqual(caught.exception.code, 22)
        self.assertIn(str(netrc), caught.exception.message)
        self.assertNotIn("s3cret", caught.exception.message)
        self.assertFalse(os.path.exists(self.dest))
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy("s3://b/app.zip", self.dest, s3_endpoint="ftp://x", s3_path_style=True)
        self.assertEqual(caught.exception.code, 20)
        self.assertIn("endpoint", str(caught.exception))

    def test_out_of_range_numbers_and_non_utf8_strings_are_usage_errors(self):
        # ctypes would wrap a number too big for its C type (keep=2**32 would
        # keep no release, max_download=2**64+1 would accept 1 byte), and a
        # string that is not UTF-8 is no C ABI string: each is a UsageError
        # naming the argument, like every other bad argument.
        too_big = {
            "keep": 2**32,
            "retries": 2**32 + 3,
            "connections": 2**32 + 1,
            "max_download": 2**64 + 1,
            "max_entries": 2**64,
            "timeout": float("inf"),
            "stall_timeout": 1e300,
        }
        for name, value in too_big.items():
            with self.subTest(name=name):
                with self.assertRaises(zipdeploy.UsageError) as caught:
                    zipdeploy.deploy(self.url, self.dest, **{name: value})
                self.assertEqual(caught.exception.code, 23)
                self.assertIn(name, caught.exception.message)
        not_utf8 = self.dest.parent / os.fsdecode(b"app-\xff")
        for dest in (bytes(not_utf8), not_utf8, str(not_utf8)):
            with self.subTest(dest=dest):
                with self.assertRaises(zipdeploy.UsageError) as caught:
                    zipdeploy.deploy(self.url, dest)
                self.assertEqual(caught.exception.code, 24)
                with self.assertRaises(zipdeploy.UsageError):
                    zipdeploy.status(dest)
        self.assertEqual(os.listdir(self.dest.parent), [])

    def test_limits_and_connection_timeouts_are_options(self):
        with self.assertRaises(zipdeploy.LimitError) as caught:
            zipdeploy.deploy(self.url, self.dest, max_entries=1)
        self.assertEqual(caught.exception.code, 60)
        with self.assertRaises(zipdeploy.LimitError) as caught:
            zipdeploy.deploy(self.url, self.dest, max_total_size=3)
        self.assertEqual(caught.exception.code, 60)
        self.assertFalse(self.dest.exists())
        # Five entries, and the one directory they imply without listing it:
        # implied directories count toward max_entries.
        report = zipdeploy.deploy(
            self.url, self.dest, max_entries=6, max_total_size=1 << 20, connect_timeout=5, stall_timeout=5
        )
        self.assertEqual(report.entries, 5)
        for bad in ({"connect_timeout": 0}, {"stall_timeout": -1}, {"max_entries": -1}):
            with self.assertRaises(ValueError, msg=bad):
                zipdeploy.deploy(self.url, self.dest, **bad)

    def test_path_and_metadata_limits_are_options(self):
        # v1 has static/app.css (14 bytes, two components) and no extra field.
        for limit in ({"max_path_depth": 1}, {"max_path_length": 13}):
            with self.assertRaises(zipdeploy.LimitError, msg=limit) as caught:
                zipdeploy.deploy(self.url, self.dest, **limit)
            self.assertEqual(caught.exception.code, 60, limit)
            self.assertIn("static/app.css", caught.exception.message)
        self.assertFalse(self.dest.exists())
        # 0 is refused by the library itself (code 23), negatives by the wrapper.
        for bad in ({"max_path_depth": 0}, {"max_path_length": 0}, {"max_metadata": 0}, {"max_metadata": -1}):
            with self.assertRaises(zipdeploy.UsageError, msg=bad) as caught:
                zipdeploy.deploy(self.url, self.dest, **bad)
            self.assertEqual(caught.exception.code, 23, bad)
            self.assertIn(next(iter(bad)), caught.exception.message)
        report = zipdeploy.deploy(
            self.url, self.dest, max_path_depth=2, max_path_length=14, max_metadata=1 << 20
        )
        self.assertEqual(report.entries, 5)

    def test_headers_for_go_to_their_origin_only(self):
        private = env("ZIPDEPLOY_TEST_URL_PRIVATE")  # 403 without X-Mirror-Token: m1
        origin = private.split("/private.zip")[0]
        token = {"X-Mirror-Token": "m1"}
        with self.assertRaises(zipdeploy.NetworkError) as caught:
            zipdeploy.deploy(private, self.dest, retries=0, headers_for={"http://127.0.0.2:1": token})
        self.assertEqual(caught.exception.code, 30)
        self.assertNotIn("m1", str(caught.exception))
        # The mirror's own token reaches the mirror.
        report = zipdeploy.deploy(
            self.url_404, self.dest, self.sha, mirrors=[private], retries=0, headers_for={origin: token}
        )
        self.assertEqual(report.source, private)
        self.assertEqual(self.version(), "1")
        with self.assertRaises(zipdeploy.UsageError) as caught:
            zipdeploy.deploy(self.url, self.dest, headers_for={"ftp://x": token})
        self.assertEqual(caught.exception.code, 20)

    def test_a_leftover_that_cannot_be_removed_is_a_report_warning(self):
        # As root, a state dir owned by nobody holding a root-owned tree:
        # a deploy run as nobody cannot remove it, sets it aside and warns.
        self.assertEqual(os.geteuid(), 0, "this test runs as root (as CI does)")
        nobody = 65534
        root = self.dest.parent
        os.chmod(root, 0o755)
        srv = root / "srv"
        state = srv / ".app.zipdeploy"
        stuck = state / "staging-stuck" / "root-owned"
        stuck.mkdir(parents=True)
        (stuck / "file").write_text("x")
        os.chmod(state, 0o700)
        for path in (srv, state, state / "staging-stuck"):
            os.chown(path, nobody, nobody)
        # Forked rather than run as a new interpreter, which nobody may not
        # be allowed to execute; the parent gives up on a silent child.
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            answer = "the child failed"
            try:
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                report = zipdeploy.deploy(self.url, srv / "app", self.sha, retries=0)
                answer = report.warnings
            except BaseException as exc:  # noqa: BLE001 - shown by the parent
                answer = f"the child failed: {exc!r}"
            finally:
                os.write(write_end, json.dumps(answer).encode())
                os._exit(0)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 60)
            if not ready:
                os.kill(pid, 9)
            answer = json.loads(os.read(read_end, 1 << 16) or b'"no answer"')
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        self.assertIsInstance(answer, list, answer)
        self.assertEqual(len(answer), 1, answer)
        self.assertIn("could not remove leftover", answer[0])
        self.assertIn("set aside as", answer[0])
        self.assertEqual((srv / "app" / "VERSION").read_text(), "1")

    def test_a_stalled_download_is_a_timeout_error(self):
        with self.assertRaises(TimeoutError) as caught:
            zipdeploy.deploy(self.url_stall, self.dest, stall_timeout=0.3, retries=0)
        err = caught.exception
        self.assertIsInstance(err, zipdeploy.NetworkTimeout)
        self.assertIsInstance(err, zipdeploy.NetworkError)
        self.assertIsInstance(err, OSError)
        self.assertEqual((err.code, err.cls), (32, 3))
        self.assertFalse(self.dest.exists())

    def test_errors_derive_from_the_builtin_they_mean(self):
        with self.assertRaises(ValueError) as caught:
            zipdeploy.deploy(self.url, self.dest, "not a digest")
        self.assertIsInstance(caught.exception, zipdeploy.UsageError)
        self.assertEqual(caught.exception.code, 21)
        with self.assertRaises(OSError) as caught:
            zipdeploy.deploy(self.url_404, self.dest, retries=0)
        self.assertIsInstance(caught.exception, zipdeploy.NetworkError)
        self.assertNotIsInstance(caught.exception, TimeoutError)
        blocker = self.dest.parent / "file"
        blocker.write_text("not a directory")
        with self.assertRaises(OSError) as caught:
            zipdeploy.deploy(self.url, blocker / "app")
        self.assertIsInstance(caught.exception, zipdeploy.FilesystemError)
        self.assertEqual(caught.exception.cls, 7)
        with self.assertRaises(OSError) as caught:
            zipdeploy.rollback(self.dest)
        self.assertEqual(caught.exception.code, 72)
        with self.assertRaises(zipdeploy.DigestError) as caught:
            zipdeploy.deploy(self.url, self.dest, "0" * 64)
        self.assertNotIsInstance(caught.exception, OSError)
        self.assertIsInstance(zipdeploy.InternalError(10, "bug"), RuntimeError)


#: The C header the wrapper declares, in this checkout.
HEADER = pathlib.Path(__file__).resolve().parents[2] / "include" / "zipdeploy.h"


def header_prototypes():
    """(return type, name, [parameter types]) of every function in the header."""
    text = HEADER.read_text()
    found = re.findall(r"^([A-Za-z_][\w ]*?\**)\s*(zipdeploy_\w+)\(([^)]*)\);", text, re.M)
    prototypes = []
    for ret, name, params in found:
        params = " ".join(params.split())
        # Each parameter without its name: "const char *url" -> "const char *".
        types = [] if params == "void" else [re.sub(r"\w+$", "", p.strip()) for p in params.split(",")]
        prototypes.append((ret, name, types))
    return prototypes


class SignaturesTest(unittest.TestCase):
    def test_every_function_of_the_header_is_declared_with_its_types(self):
        # An undeclared function returns a C int and takes Python ints as C
        # ints: a handle (a 64-bit pointer) passed to it, or a string it
        # returns, is cut to 32 bits. load_library() is public, so every
        # function is declared, each with the types of its prototype.
        def ctype(c: str):
            c = c.replace("const ", "").replace("struct ", "").replace(" ", "")
            if c == "void":
                return None
            if c == "int":
                return ctypes.c_int
            if c == "uint64_t":
                return ctypes.c_uint64
            if c == "uint32_t":
                return ctypes.c_uint32
            if c == "zipdeploy_progress_callback":
                return zipdeploy._CALLBACK
            if c.endswith("**"):
                return ctypes.POINTER(ctypes.c_void_p)
            if c == "char*":
                return (ctypes.c_char_p, ctypes.c_void_p)
            if c.endswith("*"):
                return ctypes.c_void_p
            self.fail(f"unexpected C type {c!r}")

        def same(declared, expected):
            return declared in expected if isinstance(expected, tuple) else declared == expected

        prototypes = header_prototypes()
        self.assertGreater(len(prototypes), 80, "the header's functions were found")
        lib = zipdeploy.load_library()
        for ret, name, params in prototypes:
            with self.subTest(function=name):
                self.assertIn(name, zipdeploy._SIGNATURES)
                fn = getattr(lib, name)
                self.assertTrue(same(fn.restype, ctype(ret)), f"{name} returns {ret}")
                self.assertEqual(len(fn.argtypes), len(params), name)
                for declared, param in zip(fn.argtypes, params):
                    self.assertTrue(same(declared, ctype(param)), f"{name}: {param}")
        # Nothing declared that the header does not have.
        self.assertEqual(set(zipdeploy._SIGNATURES), {name for _, name, _ in prototypes})

    def test_a_cdll_given_as_library_is_declared_before_use(self):
        # `library=ctypes.CDLL(path)` is accepted: undeclared, its functions
        # return C ints, and the first pointer used crashed the process (so
        # this runs in a child).
        check = (
            "import ctypes, os, sys, zipdeploy\n"
            "lib = ctypes.CDLL(os.environ['ZIPDEPLOY_LIB'])\n"
            "assert zipdeploy.version(lib) == zipdeploy.version()\n"
            "report = zipdeploy.deploy(sys.argv[1], sys.argv[2], library=lib)\n"
            "assert zipdeploy.status(sys.argv[2], library=lib).current.digest == report.digest\n"
            "print('ok')\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.run(
                [sys.executable, "-c", check, env("ZIPDEPLOY_TEST_URL"), os.path.join(tmp, "app")],
                cwd=pathlib.Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=60,
            )
        self.assertEqual((child.returncode, child.stdout), (0, "ok\n"), child.stderr)


if __name__ == "__main__":
    unittest.main()
