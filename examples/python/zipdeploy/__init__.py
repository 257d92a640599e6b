"""Deploy ZIP application packages from Python through the zipdeploy C library.

A ctypes wrapper over the C ABI (include/zipdeploy.h)::

    import zipdeploy
    report = zipdeploy.deploy("https://example.com/app.zip", "/srv/app",
                              sha256="23745f9b…", timeout=60)
    print(report.files, report.noop)

    # fleets: signed packages, mirrors, a shared cache; status and rollback
    zipdeploy.deploy("https://a.example/app.zip", "/srv/app",
                     minisign_key="RWQ…", mirrors=["https://b.example/app.zip"],
                     cache="/var/cache/zipdeploy")
    print(zipdeploy.status("/srv/app").digest)
    zipdeploy.rollback("/srv/app")

Errors raise a subclass of :class:`ZipDeployError` (``.code`` is the stable
result code, ``.cls`` its class, the CLI's exit status), which also derives from
the builtin exception it means: a timeout is a :class:`TimeoutError`, a bad
argument (URL, digest, option) a :class:`ValueError`, a network or
filesystem failure an :class:`OSError`. On any error the destination is left
exactly as it was.

Install with ``pip install ./examples/python`` from a checkout: the build
runs cargo and bundles ``libzipdeploy.so`` into the package. The library
loaded is ``$ZIPDEPLOY_LIB`` if set, else the bundled one, else whatever the
dynamic loader finds (e.g. installed by the repository's ``install.sh``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import pathlib
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, NoReturn, Optional, Sequence, Tuple, Union

__all__ = [
    "deploy",
    "status",
    "rollback",
    "Status",
    "Release",
    "load_library",
    "version",
    "Progress",
    "Report",
    "ZipDeployError",
    "InternalError",
    "UsageError",
    "NetworkError",
    "NetworkTimeout",
    "DigestError",
    "ArchiveError",
    "LimitError",
    "FilesystemError",
    "HookError",
    "DeployCancelled",
]

OK = 0
INVALID_ARGUMENT = 23
INVALID_UTF8 = 24
CANCELLED = 90


class ZipDeployError(Exception):
    """A failed deploy: ``code`` is the stable result code (e.g. 40), ``cls`` is
    ``code // 10`` (e.g. 4, digest), ``message`` names the cause."""

    code: int
    cls: int
    message: str

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.cls = code // 10
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (zipdeploy error {self.code})"

    def __reduce__(self) -> Tuple[type, Tuple[int, str]]:
        # Pickles with both arguments (args holds the message only).
        return (type(self), (self.code, self.message))


class InternalError(ZipDeployError, RuntimeError):
    """Class 1: a bug in the library (a caught panic)."""


class UsageError(ZipDeployError, ValueError):
    """Class 2: invalid URL, digest, option or argument."""


class NetworkError(ZipDeployError, OSError):
    """Class 3: HTTP status, network failure, timeout, truncated body, TLS."""


class NetworkTimeout(NetworkError, TimeoutError):
    """Code 32: a connect, stall or overall timeout expired."""


class DigestError(ZipDeployError):
    """Class 4: the package's SHA-256 is not the expected one, its minisign
    signature is bad (41) or missing (42), or the digest sidecar is unusable
    (43)."""


class ArchiveError(ZipDeployError):
    """Class 5: not a ZIP, corrupt, ambiguous or hostile archive."""


class LimitError(ZipDeployError):
    """Class 6: a size or count limit was exceeded."""


class FilesystemError(ZipDeployError, OSError):
    """Class 7: a local filesystem operation failed, or no space."""


class HookError(ZipDeployError):
    """Class 8: a hook refused the staged tree."""


class DeployCancelled(ZipDeployError):
    """Class 9: the progress callable asked to stop."""


_BY_CLASS = {
    1: InternalError,
    2: UsageError,
    3: NetworkError,
    4: DigestError,
    5: ArchiveError,
    6: LimitError,
    7: FilesystemError,
    8: HookError,
    9: DeployCancelled,
}


TIMEOUT = 32


def _error(code: int, message: str) -> ZipDeployError:
    if code == TIMEOUT:
        return NetworkTimeout(code, message)
    return _BY_CLASS.get(code // 10, InternalError)(code, message)


_STAGES = {1: "fetch", 2: "extract", 3: "install"}


@dataclass(frozen=True)
class Progress:
    """How far a deploy is; totals are None when unknown."""

    stage: str  # "fetch", "extract" or "install"
    bytes: int
    total_bytes: Optional[int]
    entries: int
    total_entries: Optional[int]


@dataclass(frozen=True)
class Report:
    """What a deploy did."""

    digest: str
    source: str
    dest: str
    noop: bool
    streamed: bool  # entries were extracted while the package downloaded
    bytes_downloaded: int
    package_size: int
    entries: int
    files: int
    dirs: int
    symlinks: int
    bytes_written: int
    fetch_ms: int
    extract_ms: int
    install_ms: int
    total_ms: int
    cache_hit: bool  # came from the download cache (re-verified)
    signed_by: Optional[str]  # minisign key id that verified it, or None
    # Leftovers of earlier runs that could not be removed (set aside in the
    # state directory, tried again by every later run); they did not stop it.
    warnings: List[str]
    not_modified: bool = False  # the server answered 304: nothing fetched or extracted


class _CProgress(ctypes.Structure):
    _fields_ = [
        ("stage", ctypes.c_int),
        ("bytes", ctypes.c_uint64),
        ("total_bytes", ctypes.c_uint64),
        ("entries", ctypes.c_uint64),
        ("total_entries", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class Release:
    """A package record: installed, or kept for rollback. ``digest`` and
    ``source`` are None for a kept tree zipdeploy has no record of."""

    digest: Optional[str]
    source: Optional[str]
    installed_at: int  # Unix seconds
    package_size: int


@dataclass(frozen=True)
class Status:
    """What a destination holds. ``current`` is None when nothing zipdeploy
    installed is there; ``kept`` lists the releases kept for rollback,
    oldest first (a rollback brings back the last)."""

    dest: str
    current: Optional[Release]
    signed_by: Optional[str]  # key id that verified the installed package, or None
    kept: Tuple[Release, ...]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_CProgress))

_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_U64 = ctypes.c_uint64
_U32 = ctypes.c_uint32

# name: (restype, argtypes) of every function in the header, as load_library
# hands the library out (an undeclared function would cut a 64-bit handle or
# string to a C int). Handles are opaque pointers (c_void_p); the borrowed
# strings are read with ctypes.string_at before the handle is freed.
_SIGNATURES = {
    "zipdeploy_version": (_P, []),
    "zipdeploy_code_class": (_I, [_I]),
    "zipdeploy_code_str": (_P, [_I]),
    "zipdeploy_status_class": (_I, [_I]),  # deprecated name of zipdeploy_code_class
    "zipdeploy_status_str": (_P, [_I]),  # deprecated name of zipdeploy_code_str
    "zipdeploy_deploy_new": (_P, []),
    "zipdeploy_deploy_free": (None, [_P]),
    "zipdeploy_deploy_set_url": (_I, [_P, _S]),
    "zipdeploy_deploy_set_sha256": (_I, [_P, _S]),
    "zipdeploy_deploy_set_dest": (_I, [_P, _S]),
    "zipdeploy_deploy_set_max_download": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_max_total_size": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_max_entries": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_max_path_depth": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_max_path_length": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_max_metadata": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_timeout_ms": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_connect_timeout_ms": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_stall_timeout_ms": (_I, [_P, _U64]),
    "zipdeploy_deploy_set_retries": (_I, [_P, _U32]),
    "zipdeploy_deploy_set_connections": (_I, [_P, _U32]),
    "zipdeploy_deploy_set_speed_limit": (_I, [_P, _U64, _U64]),
    "zipdeploy_deploy_add_header": (_I, [_P, _S, _S]),
    "zipdeploy_deploy_add_header_for": (_I, [_P, _S, _S, _S]),
    "zipdeploy_deploy_add_cacert_file": (_I, [_P, _S]),
    "zipdeploy_deploy_set_netrc_file": (_I, [_P, _S]),
    "zipdeploy_deploy_set_keep": (_I, [_P, _U32]),
    "zipdeploy_deploy_set_durable": (_I, [_P, _I]),
    "zipdeploy_deploy_set_progress": (_I, [_P, _CALLBACK, _P]),
    "zipdeploy_deploy_run": (_I, [_P, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "zipdeploy_deploy_clear_headers": (_I, [_P]),
    "zipdeploy_deploy_clear_cacerts": (_I, [_P]),
    "zipdeploy_deploy_clear_mirrors": (_I, [_P]),
    "zipdeploy_deploy_last_code": (_I, [_P]),
    "zipdeploy_deploy_last_status": (_I, [_P]),  # deprecated name of zipdeploy_deploy_last_code
    "zipdeploy_deploy_last_error": (_P, [_P]),
    "zipdeploy_error_code": (_I, [_P]),
    "zipdeploy_error_class": (_I, [_P]),
    "zipdeploy_error_message": (_P, [_P]),
    "zipdeploy_error_free": (None, [_P]),
    "zipdeploy_report_digest": (_P, [_P]),
    "zipdeploy_report_source": (_P, [_P]),
    "zipdeploy_report_dest": (_P, [_P]),
    "zipdeploy_report_noop": (_I, [_P]),
    "zipdeploy_report_streamed": (_I, [_P]),
    "zipdeploy_report_cache_hit": (_I, [_P]),
    "zipdeploy_report_not_modified": (_I, [_P]),
    "zipdeploy_report_signed_by": (_P, [_P]),
    "zipdeploy_report_warning_count": (_U64, [_P]),
    "zipdeploy_report_warning": (_P, [_P, _U64]),
    "zipdeploy_report_free": (None, [_P]),
    "zipdeploy_deploy_set_sha256_from": (_I, [_P, _S]),
    "zipdeploy_deploy_add_mirror": (_I, [_P, _S]),
    "zipdeploy_deploy_set_minisign_key": (_I, [_P, _S]),
    "zipdeploy_deploy_set_minisign_sig": (_I, [_P, _S]),
    "zipdeploy_deploy_set_s3_endpoint": (_I, [_P, _S]),
    "zipdeploy_deploy_set_s3_path_style": (_I, [_P, _I]),
    "zipdeploy_deploy_set_cache": (_I, [_P, _S]),
    "zipdeploy_deploy_set_cache_max_size": (_I, [_P, _U64]),
    "zipdeploy_deploy_rollback": (_I, [_P, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "zipdeploy_status_read": (_I, [_S, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "zipdeploy_status_installed": (_I, [_P]),
    "zipdeploy_status_dest": (_P, [_P]),
    "zipdeploy_status_digest": (_P, [_P]),
    "zipdeploy_status_source": (_P, [_P]),
    "zipdeploy_status_signed_by": (_P, [_P]),
    "zipdeploy_status_installed_at": (_U64, [_P]),
    "zipdeploy_status_package_size": (_U64, [_P]),
    "zipdeploy_status_kept_count": (_U64, [_P]),
    "zipdeploy_status_kept_digest": (_P, [_P, _U64]),
    "zipdeploy_status_kept_source": (_P, [_P, _U64]),
    "zipdeploy_status_kept_installed_at": (_U64, [_P, _U64]),
    "zipdeploy_status_kept_package_size": (_U64, [_P, _U64]),
    "zipdeploy_status_free": (None, [_P]),
}
_REPORT_NUMBERS = (
    "bytes_downloaded",
    "package_size",
    "entries",
    "files",
    "dirs",
    "symlinks",
    "bytes_written",
    "fetch_ms",
    "extract_ms",
    "install_ms",
    "total_ms",
)
for _name in _REPORT_NUMBERS:
    _SIGNATURES[f"zipdeploy_report_{_name}"] = (_U64, [_P])

_lock = threading.Lock()
_loaded: Dict[str, ctypes.CDLL] = {}

#: Where ``pip install`` puts the library built for this package.
BUNDLED_LIBRARY = pathlib.Path(__file__).resolve().with_name("libzipdeploy.so")


def _candidates() -> List[str]:
    env = os.environ.get("ZIPDEPLOY_LIB")
    if env:
        return [env]
    if BUNDLED_LIBRARY.is_file():
        return [str(BUNDLED_LIBRARY)]
    system = ctypes.util.find_library("zipdeploy")
    return [system] if system else []


def load_library(path: Union[str, "os.PathLike[str]", None] = None) -> ctypes.CDLL:
    """Loads (once per path) and declares the C library: ``path``, else
    ``$ZIPDEPLOY_LIB``, else the library bundled by ``pip install``, else
    the one the dynamic loader finds."""
    paths = [os.fspath(path)] if path is not None else _candidates()
    if not paths:
        raise OSError(
            "libzipdeploy.so not found: install this package with pip (which bundles it), "
            "install the C library (install.sh), or set ZIPDEPLOY_LIB"
        )
    with _lock:
        if paths[0] in _loaded:
            return _loaded[paths[0]]
        lib = _declare(ctypes.CDLL(paths[0]))
        _loaded[paths[0]] = lib
        return lib


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Gives every function of ``lib`` its C types (idempotent)."""
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _library(library: "_Library") -> ctypes.CDLL:
    """The library to call: a ``ctypes.CDLL`` given by the caller, declared
    first (as it comes from ``ctypes.CDLL(path)``, every function would
    return a C int and cut the 64-bit pointers), else :func:`load_library`."""
    if isinstance(library, ctypes.CDLL):
        with _lock:
            return _declare(library)
    return load_library(library)


def _text(pointer: Optional[int]) -> str:
    return ctypes.string_at(pointer).decode("utf-8") if pointer else ""


def _optional_text(pointer: Optional[int]) -> Optional[str]:
    """A getter's string, None for the empty string it returns for "absent"."""
    return _text(pointer) or None


def version(library: Union[str, "os.PathLike[str]", ctypes.CDLL, None] = None) -> str:
    """The version of the C library."""
    lib = _library(library)
    return _text(lib.zipdeploy_version())


def _c_string(what: str, value: Union[str, "os.PathLike[str]"]) -> bytes:
    text = os.fspath(value)
    try:
        # The C ABI takes UTF-8: a bytes path must be UTF-8, and a str must
        # not hold the surrogates os.fsdecode makes of other bytes.
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        encoded = text.encode("utf-8")
    except UnicodeError:
        raise UsageError(INVALID_UTF8, f"{what} is not valid UTF-8") from None
    if b"\0" in encoded:
        raise UsageError(INVALID_ARGUMENT, f"{what} contains a NUL character")
    return encoded


def _millis(what: str, seconds: float) -> int:
    if not seconds > 0:
        raise UsageError(INVALID_ARGUMENT, f"{what} must be positive")
    if not seconds * 1000 < 1 << 64:  # also infinity
        raise UsageError(INVALID_ARGUMENT, f"{what} is too large")
    return max(1, math.ceil(seconds * 1000))


def _count(what: str, value: int, bits: int = 64) -> int:
    """A count for a C uint64_t (or uint32_t): ctypes would silently wrap a
    bigger one (keep=2**32 would keep none)."""
    if value < 0:
        raise UsageError(INVALID_ARGUMENT, f"{what} must not be negative")
    if value >= 1 << bits:
        raise UsageError(INVALID_ARGUMENT, f"{what} must be below 2**{bits}")
    return value


#: The signals whose Python handlers (Ctrl-C's KeyboardInterrupt) cancel a run.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_cancel(raised: List[BaseException]) -> Iterator[None]:
    """While the library runs on the main thread, what a Python handler of
    SIGINT or SIGTERM raises (Ctrl-C's KeyboardInterrupt) is kept in
    ``raised``, for the progress callback to cancel the run on (within about
    100 ms) and the caller to re-raise. Python runs a handler at the next
    Python code, which is the entry of the ctypes callback, outside any
    ``try``: ctypes would print the exception as ignored and the run go on."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if not callable(handler):
                continue  # SIG_DFL, SIG_IGN: no Python code runs

            def deferred(number: int, frame: object, handler: Callable = handler) -> None:
                try:
                    handler(number, frame)
                except BaseException as exc:  # noqa: BLE001 - re-raised after the run
                    raised.append(exc)

            try:
                signal.signal(signum, deferred)
            except ValueError:  # not the main interpreter: its handlers stay
                continue
            previous[signum] = handler
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_Library = Union[str, "os.PathLike[str]", ctypes.CDLL, None]
_Path = Union[str, "os.PathLike[str]"]


def deploy(
    url: str,
    dest: _Path,
    sha256: Optional[str] = None,
    *,
    timeout: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    stall_timeout: Optional[float] = None,
    retries: Optional[int] = None,
    connections: Optional[int] = None,
    speed_limit: Optional[Tuple[int, float]] = None,
    headers: Optional[Mapping[str, str]] = None,
    headers_for: Optional[Mapping[str, Mapping[str, str]]] = None,
    cacert: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None] = None,
    netrc_file: Optional[_Path] = None,
    no_netrc: bool = False,
    max_download: Optional[int] = None,
    max_total_size: Optional[int] = None,
    max_entries: Optional[int] = None,
    max_path_depth: Optional[int] = None,
    max_path_length: Optional[int] = None,
    max_metadata: Optional[int] = None,
    progress: Optional[Callable[[Progress], object]] = None,
    sha256_from: Optional[str] = None,
    mirrors: Sequence[str] = (),
    minisign_key: Optional[str] = None,
    minisign_sig: Optional[str] = None,
    cache: Optional[_Path] = None,
    cache_max_size: Optional[int] = None,
    keep: Optional[int] = None,
    sync: bool = False,
    s3_endpoint: Optional[str] = None,
    s3_path_style: bool = False,
    library: _Library = None,
) -> Report:
    """Fetches, verifies, extracts and installs the package at ``url`` into
    ``dest``. ``None`` (the default of every option) means the library's
    default.

    ``timeout`` (seconds) bounds the whole download, retries included;
    ``connect_timeout`` establishing a connection (default 10 s);
    ``stall_timeout`` waiting for bytes once connected (default 30 s).
    ``retries`` bounds the retries on transient failures (default 3);
    ``connections`` bounds the connections one download uses (default 8; 1:
    one): a download slowed by a per-connection cap fetches its rest in byte
    ranges over several at once;
    ``speed_limit`` is the low-speed rule ``(bytes_per_second, seconds)``: a
    download averaging less fails as a timeout and is retried (default
    ``(1024, 30)``; ``(0, 0)`` turns it off). ``headers`` are sent with the
    request, to the package URL's origin only; ``headers_for`` maps an origin
    (``"https://mirror.example.net"``: scheme, host and port count) to headers
    sent to that origin only, e.g. a mirror's own token. ``cacert`` is a PEM file (or a
    list of them) of CA certificates trusted for https in addition to the
    host's store, like curl's ``--cacert``. ``netrc_file`` is a netrc file
    whose credentials http(s) requests get, each only for its own host, like
    curl's ``--netrc-file`` (default: the file ``NETRC`` names, else
    ``~/.netrc``, when it exists; refused if group or others may read it);
    ``no_netrc`` reads none. Limits: ``max_download`` caps
    the package size in bytes (default 4 GiB), ``max_total_size`` the
    uncompressed total (8 GiB) and ``max_entries`` the number of entries
    (1,000,000); per entry, ``max_path_depth`` caps the components of its
    path (256) and ``max_path_length`` its bytes (4096); ``max_metadata``
    caps the bytes of extra fields and comments in the central directory
    (64 MiB). Exceeding one raises :class:`LimitError`; a limit of 0 is
    refused (:class:`UsageError`). ``progress`` is called with a
    :class:`Progress` as the deploy advances, and at least every 100 ms while
    the network or another deploy's lock is waited for (with unchanged
    counts); a truthy
    return cancels it within about 100 ms, stalled server or not
    (:class:`DeployCancelled`), and an exception it raises cancels it and
    propagates from ``deploy``. The last call (stage ``"install"``) comes
    once the tree is activated: the deploy is done, so its return cannot
    cancel, but an exception it raises (a ``KeyboardInterrupt``) still
    propagates. The GIL is released while the library works. Called on the
    main thread, Ctrl-C (what a Python SIGINT or SIGTERM handler raises)
    cancels the deploy within about 100 ms, progress callable or not, and
    propagates from ``deploy``.

    ``sha256_from`` reads the expected digest from a sidecar file
    (``app.zip.sha256``); ``mirrors`` are further locations of the package,
    tried in order; ``minisign_key`` (base64 key or ``.pub`` path) requires a
    minisign signature, from ``url + ".minisig"`` or ``minisign_sig``;
    ``cache`` is a download cache directory shared by deploys (bounded by
    ``cache_max_size`` bytes); ``keep`` previous releases stay for rollback.
    ``sync`` syncs the new tree to disk before activating it, so the deploy
    also survives a power cut (slower; off by default, as in the library).

    ``url`` may be ``s3://bucket/key``: credentials and region come from the
    standard AWS variables and files (see the README); ``s3_endpoint`` is an
    S3-compatible endpoint (``http(s)://host[:port]``, path-style) instead of
    ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``/AWS, and ``s3_path_style``
    addresses AWS path-style too.

    Raises a :class:`ZipDeployError` subclass on failure; the destination is
    then left exactly as it was.
    """
    lib = _library(library)
    handle = lib.zipdeploy_deploy_new()
    if not handle:
        raise InternalError(10, "cannot create a deploy handle")
    raised: List[BaseException] = []
    report_progress = progress

    def on_progress(_userdata: Optional[int], event: "ctypes._Pointer[_CProgress]") -> int:
        try:
            if raised:  # by a signal handler (Ctrl-C) or the progress callable
                return 1
            if report_progress is None:
                return 0
            p = event.contents
            snapshot = Progress(
                stage=_STAGES.get(p.stage, str(p.stage)),
                bytes=p.bytes,
                total_bytes=p.total_bytes or None,
                entries=p.entries,
                total_entries=p.total_entries or None,
            )
            return 1 if report_progress(snapshot) else 0
        except BaseException as exc:  # noqa: BLE001 - re-raised after the run
            raised.append(exc)
            return 1

    # Referenced until the handle is freed: the library calls it. Installed
    # without a progress callable too, so that Ctrl-C cancels the run.
    callback = _CALLBACK(on_progress)
    try:

        def check(code: int) -> None:
            if code != OK:
                raise _error(code, _text(lib.zipdeploy_deploy_last_error(handle)))

        check(lib.zipdeploy_deploy_set_url(handle, _c_string("url", url)))
        check(lib.zipdeploy_deploy_set_dest(handle, _c_string("dest", dest)))
        if sha256 is not None:
            check(lib.zipdeploy_deploy_set_sha256(handle, _c_string("sha256", sha256)))
        if timeout is not None:
            check(lib.zipdeploy_deploy_set_timeout_ms(handle, _millis("timeout", timeout)))
        if connect_timeout is not None:
            check(
                lib.zipdeploy_deploy_set_connect_timeout_ms(
                    handle, _millis("connect_timeout", connect_timeout)
                )
            )
        if stall_timeout is not None:
            check(
                lib.zipdeploy_deploy_set_stall_timeout_ms(handle, _millis("stall_timeout", stall_timeout))
            )
        if retries is not None:
            check(lib.zipdeploy_deploy_set_retries(handle, _count("retries", retries, 32)))
        if connections is not None:
            check(lib.zipdeploy_deploy_set_connections(handle, _count("connections", connections, 32)))
        if speed_limit is not None:
            limit, seconds = speed_limit
            window = _millis("speed_limit", seconds) if limit else 0
            check(lib.zipdeploy_deploy_set_speed_limit(handle, _count("speed_limit", limit), window))
        for name, value in (headers or {}).items():
            check(
                lib.zipdeploy_deploy_add_header(
                    handle, _c_string("header name", name), _c_string("header value", value)
                )
            )
        for origin, origin_headers in (headers_for or {}).items():
            for name, value in origin_headers.items():
                check(
                    lib.zipdeploy_deploy_add_header_for(
                        handle,
                        _c_string("origin", origin),
                        _c_string("header name", name),
                        _c_string("header value", value),
                    )
                )
        cacerts = [cacert] if isinstance(cacert, (str, os.PathLike)) else (cacert or [])
        for path in cacerts:
            check(lib.zipdeploy_deploy_add_cacert_file(handle, _c_string("cacert", path)))
        if no_netrc:
            check(lib.zipdeploy_deploy_set_netrc_file(handle, None))
        elif netrc_file is not None:
            check(lib.zipdeploy_deploy_set_netrc_file(handle, _c_string("netrc_file", netrc_file)))
        if max_download is not None:
            check(lib.zipdeploy_deploy_set_max_download(handle, _count("max_download", max_download)))
        if max_total_size is not None:
            check(
                lib.zipdeploy_deploy_set_max_total_size(handle, _count("max_total_size", max_total_size))
            )
        if max_entries is not None:
            check(lib.zipdeploy_deploy_set_max_entries(handle, _count("max_entries", max_entries)))
        if max_path_depth is not None:
            check(
                lib.zipdeploy_deploy_set_max_path_depth(handle, _count("max_path_depth", max_path_depth))
            )
        if max_path_length is not None:
            check(
                lib.zipdeploy_deploy_set_max_path_length(
                    handle, _count("max_path_length", max_path_length)
                )
            )
        if max_metadata is not None:
            check(lib.zipdeploy_deploy_set_max_metadata(handle, _count("max_metadata", max_metadata)))
        check(lib.zipdeploy_deploy_set_progress(handle, callback, None))
        if sha256_from is not None:
            check(lib.zipdeploy_deploy_set_sha256_from(handle, _c_string("sha256_from", sha256_from)))
        for mirror in mirrors:
            check(lib.zipdeploy_deploy_add_mirror(handle, _c_string("mirror", mirror)))
        if minisign_key is not None:
            check(lib.zipdeploy_deploy_set_minisign_key(handle, _c_string("minisign_key", minisign_key)))
        if minisign_sig is not None:
            check(lib.zipdeploy_deploy_set_minisign_sig(handle, _c_string("minisign_sig", minisign_sig)))
        if cache is not None:
            check(lib.zipdeploy_deploy_set_cache(handle, _c_string("cache", cache)))
        if cache_max_size is not None:
            check(lib.zipdeploy_deploy_set_cache_max_size(handle, _count("cache_max_size", cache_max_size)))
        if keep is not None:
            check(lib.zipdeploy_deploy_set_keep(handle, _count("keep", keep, 32)))
        if sync:
            check(lib.zipdeploy_deploy_set_durable(handle, 1))
        if s3_endpoint is not None:
            check(lib.zipdeploy_deploy_set_s3_endpoint(handle, _c_string("s3_endpoint", s3_endpoint)))
        if s3_path_style:
            check(lib.zipdeploy_deploy_set_s3_path_style(handle, 1))

        report = ctypes.c_void_p()
        error = ctypes.c_void_p()
        with _signals_cancel(raised):
            code: int = lib.zipdeploy_deploy_run(handle, ctypes.byref(report), ctypes.byref(error))
        if code != OK:
            try:
                failure = _error(
                    lib.zipdeploy_error_code(error), _text(lib.zipdeploy_error_message(error))
                )
            finally:
                lib.zipdeploy_error_free(error)
            if raised:
                raise raised[0]  # from the progress callable or a signal handler: cancelled
            raise failure
        if raised:
            # Raised by the last event, after activation: the deploy is
            # done, but the exception (a KeyboardInterrupt, a bug in the
            # callable) is not swallowed.
            lib.zipdeploy_report_free(report)
            raise raised[0]
        try:
            numbers = {
                name: getattr(lib, f"zipdeploy_report_{name}")(report)
                for name in _REPORT_NUMBERS
            }
            return Report(
                digest=_text(lib.zipdeploy_report_digest(report)),
                source=_text(lib.zipdeploy_report_source(report)),
                dest=_text(lib.zipdeploy_report_dest(report)),
                noop=bool(lib.zipdeploy_report_noop(report)),
                streamed=bool(lib.zipdeploy_report_streamed(report)),
                cache_hit=bool(lib.zipdeploy_report_cache_hit(report)),
                not_modified=bool(lib.zipdeploy_report_not_modified(report)),
                signed_by=_optional_text(lib.zipdeploy_report_signed_by(report)),
                warnings=[
                    _text(lib.zipdeploy_report_warning(report, i))
                    for i in range(lib.zipdeploy_report_warning_count(report))
                ],
                **numbers,
            )
        finally:
            lib.zipdeploy_report_free(report)
    finally:
        lib.zipdeploy_deploy_free(handle)


def _status(lib: ctypes.CDLL, handle: ctypes.c_void_p) -> Status:
    """Reads a zipdeploy_status and frees it."""
    try:
        kept = tuple(
            Release(
                digest=_optional_text(lib.zipdeploy_status_kept_digest(handle, i)),
                source=_optional_text(lib.zipdeploy_status_kept_source(handle, i)),
                installed_at=lib.zipdeploy_status_kept_installed_at(handle, i),
                package_size=lib.zipdeploy_status_kept_package_size(handle, i),
            )
            for i in range(lib.zipdeploy_status_kept_count(handle))
        )
        current = None
        if lib.zipdeploy_status_installed(handle):
            current = Release(
                digest=_text(lib.zipdeploy_status_digest(handle)),
                source=_text(lib.zipdeploy_status_source(handle)),
                installed_at=lib.zipdeploy_status_installed_at(handle),
                package_size=lib.zipdeploy_status_package_size(handle),
            )
        return Status(
            dest=_text(lib.zipdeploy_status_dest(handle)),
            current=current,
            signed_by=_optional_text(lib.zipdeploy_status_signed_by(handle)),
            kept=kept,
        )
    finally:
        lib.zipdeploy_status_free(handle)


def _raise_owned(lib: ctypes.CDLL, error: ctypes.c_void_p) -> NoReturn:
    try:
        failure = _error(lib.zipdeploy_error_code(error), _text(lib.zipdeploy_error_message(error)))
    finally:
        lib.zipdeploy_error_free(error)
    raise failure


def status(
    dest: _Path,
    *,
    library: _Library = None,
) -> Status:
    """What is installed at ``dest`` (``current`` is None when nothing is)."""
    lib = _library(library)
    out = ctypes.c_void_p()
    error = ctypes.c_void_p()
    code = lib.zipdeploy_status_read(_c_string("dest", dest), ctypes.byref(out), ctypes.byref(error))
    if code != OK:
        _raise_owned(lib, error)
    return _status(lib, out)


def rollback(
    dest: _Path,
    *,
    sync: bool = False,
    library: _Library = None,
) -> Status:
    """Swaps the most recent kept release back into ``dest`` (atomically,
    under its lock) and returns the new status; the replaced tree becomes the
    newest kept release. ``sync`` syncs the change to disk before returning
    (power-cut safe, slower). Raises :class:`FilesystemError` (code 72) when
    no release is kept. Ctrl-C cancels a wait for a deploy's lock (on the
    main thread), as in :func:`deploy`."""
    lib = _library(library)
    handle = lib.zipdeploy_deploy_new()
    if not handle:
        raise InternalError(10, "cannot create a deploy handle")
    raised: List[BaseException] = []
    # Heartbeats while a deploy holds the lock: Ctrl-C cancels the wait.
    callback = _CALLBACK(lambda _userdata, _event: 1 if raised else 0)
    try:
        for code in (
            lib.zipdeploy_deploy_set_dest(handle, _c_string("dest", dest)),
            lib.zipdeploy_deploy_set_durable(handle, 1) if sync else OK,
            lib.zipdeploy_deploy_set_progress(handle, callback, None),
        ):
            if code != OK:
                raise _error(code, _text(lib.zipdeploy_deploy_last_error(handle)))
        out = ctypes.c_void_p()
        error = ctypes.c_void_p()
        with _signals_cancel(raised):
            code = lib.zipdeploy_deploy_rollback(handle, ctypes.byref(out), ctypes.byref(error))
        if raised:
            if code == OK:
                lib.zipdeploy_status_free(out)
            else:
                lib.zipdeploy_error_free(error)
            raise raised[0]
        if code != OK:
            _raise_owned(lib, error)
        return _status(lib, out)
    finally:
        lib.zipdeploy_deploy_free(handle)
