// Package zipdeploy deploys ZIP application packages through the zipdeploy
// C library (a Rust library with a C ABI, include/zipdeploy.h): fetch over
// HTTP(S) or from a local path, verify the SHA-256, extract with every entry
// checked, and install atomically into a directory.
//
// For fleets of hosts, a deploy can also require a minisign signature
// (Options.MinisignKey), try mirrors in order (Options.Mirrors) and share a
// download cache (Options.CacheDir), or read the expected digest from a
// sidecar file (Options.SHA256From); ReadStatus says what a destination
// holds and Rollback (or RollbackWith, to sync it to disk) brings back the
// release kept before it.
//
// The package links the installed C library through pkg-config
// (`#cgo pkg-config: zipdeploy`): install it once with the repository's
// install.sh, then build as usual; the header the package was written
// against, zipdeploy.h, is part of the module. From the repository root:
//
//	./install.sh --prefix "$HOME/.local"        # or /usr/local as root
//	export PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig"
//	cd examples/go && go test ./...            # needs the test server: see tests/ffi.rs
//
// A program outside the repository requires the module and points it at a
// checkout with a replace directive (or a go.work workspace):
//
//	require github.com/zipdeploy/zipdeploy/examples/go v0.0.0
//	replace github.com/zipdeploy/zipdeploy/examples/go => /path/to/zipdeploy/examples/go
//
// Errors are *Error values (errors.As) that also match the sentinel of
// their class (errors.Is(err, ErrNetwork)).
package zipdeploy

/*
// zipdeploy.h is this package's copy of include/zipdeploy.h (build.rs writes
// both); CPPFLAGS come before pkg-config's flags, so it is the one included.
#cgo CPPFLAGS: -I${SRCDIR}
#cgo pkg-config: zipdeploy
#include <stdint.h>
#include <stdlib.h>
#include "zipdeploy.h"

// Implemented in Go (callback.go). cgo declares exported functions without
// const, hence the cast in the trampoline.
extern int zipdeployGoProgress(void *userdata, zipdeploy_progress *progress);

// The C function the library calls: forwards to the exported Go function.
static int zipdeploy_go_trampoline(void *userdata, const zipdeploy_progress *progress) {
	return zipdeployGoProgress(userdata, (zipdeploy_progress *)progress);
}

// Installs the trampoline with a runtime/cgo.Handle as userdata. The handle
// is an integer, so Go never has to turn it into a pointer.
static int zipdeploy_go_set_progress(zipdeploy_deploy *deploy, uintptr_t handle) {
	return zipdeploy_deploy_set_progress(deploy, zipdeploy_go_trampoline, (void *)handle);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/cgo"
	"strings"
	"time"
	"unsafe"
)

// Result codes of the C ABI (stable). Code / 10 is the class.
const (
	CodeOK               = C.ZIPDEPLOY_OK
	CodePanic            = C.ZIPDEPLOY_PANIC
	CodeInvalidURL       = C.ZIPDEPLOY_INVALID_URL
	CodeInvalidDigest    = C.ZIPDEPLOY_INVALID_DIGEST
	CodeConfig           = C.ZIPDEPLOY_CONFIG
	CodeInvalidArgument  = C.ZIPDEPLOY_INVALID_ARGUMENT
	CodeInvalidUTF8      = C.ZIPDEPLOY_INVALID_UTF8
	CodeBusy             = C.ZIPDEPLOY_BUSY
	CodeHTTPStatus       = C.ZIPDEPLOY_HTTP_STATUS
	CodeNetwork          = C.ZIPDEPLOY_NETWORK
	CodeTimeout          = C.ZIPDEPLOY_TIMEOUT
	CodeTruncated        = C.ZIPDEPLOY_TRUNCATED
	CodeRedirect         = C.ZIPDEPLOY_REDIRECT
	CodeTLS              = C.ZIPDEPLOY_TLS
	CodeMirrorsFailed    = C.ZIPDEPLOY_MIRRORS_FAILED
	CodeDigestMismatch   = C.ZIPDEPLOY_DIGEST_MISMATCH
	CodeSignatureInvalid = C.ZIPDEPLOY_SIGNATURE_INVALID
	CodeSignatureMissing = C.ZIPDEPLOY_SIGNATURE_MISSING
	CodeDigestSidecar    = C.ZIPDEPLOY_DIGEST_SIDECAR
	CodeNotZip           = C.ZIPDEPLOY_NOT_ZIP
	CodeCorruptArchive   = C.ZIPDEPLOY_CORRUPT_ARCHIVE
	CodeUnsafeEntry      = C.ZIPDEPLOY_UNSAFE_ENTRY
	CodeUnsupportedEntry = C.ZIPDEPLOY_UNSUPPORTED_ENTRY
	CodeLimitExceeded    = C.ZIPDEPLOY_LIMIT_EXCEEDED
	CodeIO               = C.ZIPDEPLOY_IO
	CodeNoSpace          = C.ZIPDEPLOY_NO_SPACE
	CodeNoRelease        = C.ZIPDEPLOY_NO_RELEASE
	CodeHook             = C.ZIPDEPLOY_HOOK
	CodeCancelled        = C.ZIPDEPLOY_CANCELLED
)

// Classes of errors (Code / 10); also the example CLI's exit status.
const (
	ClassInternal   = 1
	ClassUsage      = 2
	ClassNetwork    = 3
	ClassDigest     = 4
	ClassArchive    = 5
	ClassLimit      = 6
	ClassFilesystem = 7
	ClassHook       = 8
	ClassCancelled  = 9
)

// Error is the error type of Deploy, ReadStatus, Rollback and RollbackWith.
type Error struct {
	// Code is the stable result code, e.g. CodeHTTPStatus (30).
	Code int
	// Class is Code / 10, e.g. ClassNetwork (3).
	Class int
	// Message names the cause in one line, without credentials.
	Message string
	// cause is the context's error when the context cancelled the deploy.
	cause error
}

func (e *Error) Error() string {
	return fmt.Sprintf("zipdeploy: %s (code %d)", e.Message, e.Code)
}

// Unwrap returns the context's error (context.Canceled or
// context.DeadlineExceeded) when the context cancelled the deploy.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is the sentinel of e's class, so that
// errors.Is(err, ErrDigest) holds for any digest failure.
func (e *Error) Is(target error) bool {
	return e.Class >= 0 && e.Class < len(sentinels) && sentinels[e.Class] != nil && target == sentinels[e.Class]
}

// Sentinels of the error classes, for errors.Is. Every *Error matches the
// one of its Class; errors.As with an *Error gives the Code and Message.
var (
	ErrInternal   = errors.New("zipdeploy: internal error")   // ClassInternal: a bug
	ErrUsage      = errors.New("zipdeploy: usage error")      // ClassUsage: bad URL, digest, option or argument
	ErrNetwork    = errors.New("zipdeploy: network error")    // ClassNetwork: HTTP status, connection, timeout, TLS
	ErrDigest     = errors.New("zipdeploy: digest error")     // ClassDigest: mismatch, signature, sidecar
	ErrArchive    = errors.New("zipdeploy: archive refused")  // ClassArchive: not a ZIP, corrupt, unsafe
	ErrLimit      = errors.New("zipdeploy: limit exceeded")   // ClassLimit
	ErrFilesystem = errors.New("zipdeploy: filesystem error") // ClassFilesystem: I/O, no space, no release
	ErrHook       = errors.New("zipdeploy: hook failed")      // ClassHook
	ErrCancelled  = errors.New("zipdeploy: deploy cancelled") // ClassCancelled
)

// sentinels by class.
var sentinels = [...]error{
	ClassInternal:   ErrInternal,
	ClassUsage:      ErrUsage,
	ClassNetwork:    ErrNetwork,
	ClassDigest:     ErrDigest,
	ClassArchive:    ErrArchive,
	ClassLimit:      ErrLimit,
	ClassFilesystem: ErrFilesystem,
	ClassHook:       ErrHook,
	ClassCancelled:  ErrCancelled,
}

func newError(code C.int, message string) *Error {
	return &Error{Code: int(code), Class: int(C.zipdeploy_code_class(code)), Message: message}
}

// Stage is the stage a progress event comes from.
type Stage int

// The stages of a deploy.
const (
	StageFetch   Stage = C.ZIPDEPLOY_STAGE_FETCH
	StageExtract Stage = C.ZIPDEPLOY_STAGE_EXTRACT
	StageInstall Stage = C.ZIPDEPLOY_STAGE_INSTALL
)

func (s Stage) String() string {
	switch s {
	case StageFetch:
		return "fetch"
	case StageExtract:
		return "extract"
	case StageInstall:
		return "install"
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// Progress is a snapshot of how far a deploy is. Totals are 0 when unknown.
type Progress struct {
	Stage        Stage
	Bytes        uint64
	TotalBytes   uint64
	Entries      uint64
	TotalEntries uint64
}

// Options configure a deploy. Zero values mean the library's defaults.
type Options struct {
	// URL of the package: http(s)://…, s3://bucket/key, file://… or a local
	// path. Required.
	URL string
	// Dest is the directory to install into. Required.
	Dest string
	// SHA256 is the expected digest (64 hex digits, optionally "sha256:").
	SHA256 string
	// SHA256From, if set, is where to read the expected digest from instead:
	// a sidecar file such as URL + ".sha256" (a URL or a local path),
	// fetched first with the same network options, at most 64 KiB, in the
	// form "HEX  FILENAME", "HEX *FILENAME", a bare "HEX" or
	// "SHA256 (FILENAME) = HEX"; among several lines, the one naming the
	// package's file name. Exclusive with SHA256 (both set: CodeConfig). A
	// sidecar that is not usable (too big, no line for the package,
	// ambiguous, not a digest) fails with CodeDigestSidecar; one that cannot
	// be fetched fails like the package would (e.g. CodeHTTPStatus). A
	// sidecar from the package's own host guards against corruption, not
	// against that host: for that, use MinisignKey.
	SHA256From string
	// Timeout bounds the whole download, retries included (0: none).
	Timeout time.Duration
	// ConnectTimeout bounds establishing a connection (0: 10 s).
	ConnectTimeout time.Duration
	// StallTimeout bounds waiting for bytes once connected (0: 30 s).
	StallTimeout time.Duration
	// SpeedLimit and SpeedTime are the low-speed rule (curl's --speed-limit
	// and --speed-time): a download averaging fewer than SpeedLimit bytes/s
	// over SpeedTime fails with CodeTimeout and is retried like a timeout
	// (0: 1024 bytes/s and 30 s; a negative SpeedLimit turns the rule off).
	SpeedLimit int64
	SpeedTime  time.Duration
	// Retries after the first attempt on transient failures (0: the default,
	// 3; negative: none).
	Retries int
	// Connections bounds the connections one download uses (0: the default,
	// 8; 1: one): a download slowed by a per-connection cap fetches its rest
	// in byte ranges over several at once.
	Connections int
	// Headers are extra request headers, e.g. "Authorization", sent to the
	// package URL's origin only.
	Headers map[string]string
	// HeadersFor maps an origin ("https://mirror.example.net": scheme, host
	// and port count) to headers sent to that origin only, e.g. a mirror's
	// own token. An origin that is not an http(s) URL fails with
	// CodeInvalidURL.
	HeadersFor map[string]map[string]string
	// CACertFiles are PEM files of CA certificates trusted for https in
	// addition to the host's store (SSL_CERT_FILE / SSL_CERT_DIR, else the
	// system's), like curl's --cacert: for a private CA or a TLS-intercepting
	// proxy. Each is read when the deploy starts (unreadable: CodeIO; no
	// certificate in it: CodeConfig).
	CACertFiles []string
	// NetrcFile is a netrc file whose credentials http(s) requests get,
	// each only for its own host, like curl's --netrc-file (it must exist;
	// group- or world-readable: CodeConfig). Empty: the file NETRC names,
	// else $HOME/.netrc, when it exists. NoNetrc reads none.
	NetrcFile string
	NoNetrc   bool
	// MaxDownload, MaxTotalSize and MaxEntries are limits (0: 4 GiB, 8 GiB,
	// 1,000,000).
	MaxDownload, MaxTotalSize, MaxEntries uint64
	// MaxPathDepth and MaxPathLength bound one entry's path: its components
	// and its bytes (0: 256 and 4096). MaxMetadata bounds the bytes of extra
	// fields and comments in the central directory (0: 64 MiB). Exceeding
	// one fails with CodeLimitExceeded before anything is extracted.
	MaxPathDepth, MaxPathLength, MaxMetadata uint64
	// Keep is the number of previous releases kept (0: the default, 1;
	// negative: none).
	Keep int
	// Sync syncs the staged tree to disk before activation, so the deploy
	// also survives a power cut (slower; off by default).
	Sync bool
	// Progress, if set, is called as the deploy advances, on the goroutine
	// that called Deploy, and at least every 100 ms while the network or
	// another deploy's lock is waited for (heartbeats repeat the last
	// counts). The last call (StageInstall) comes once the tree is
	// activated. A panic in it cancels the deploy (unless it was that last
	// call) and is re-raised by Deploy.
	Progress func(Progress)
	// Mirrors are further locations of the same package (like URL), tried
	// in order when the URL and earlier mirrors fail or serve a package that
	// does not verify; each gets the retry policy. When every location
	// fails, the error has CodeMirrorsFailed.
	Mirrors []string
	// MinisignKey, if set, requires a minisign signature of the package by
	// this public key: the base64 key ("RWQ…") or the path of a
	// minisign.pub file. A bad signature fails with CodeSignatureInvalid, a
	// missing one with CodeSignatureMissing.
	MinisignKey string
	// MinisignSignatureURL is where the signature is (a URL or a local
	// path; "": the package URL + ".minisig"). The signature file itself,
	// not its text.
	MinisignSignatureURL string
	// CacheDir, if set, is a download cache that the deploys of a host can
	// share: with SHA256 set, a cached package is re-hashed and used without
	// any network request.
	CacheDir string
	// CacheMaxSize bounds the total size of the cache's entries, least
	// recently used evicted first (0: 10 GiB).
	CacheMaxSize uint64
	// S3Endpoint, if set, is the S3-compatible endpoint (http(s)://host[:port],
	// path-style) for s3:// locations instead of AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL or AWS. Credentials and region come from the standard
	// AWS variables and files (see the README).
	S3Endpoint string
	// S3PathStyle addresses s3:// objects on AWS path-style too.
	S3PathStyle bool
}

// Report says what a deploy did.
type Report struct {
	Digest          string // SHA-256 of the installed package (hex)
	Source          string // package location, credentials redacted
	Dest            string // destination directory (absolute)
	NoOp            bool   // the digest was installed already; nothing done
	NotModified     bool   // the server answered 304 to the installed package's validators (a NoOp)
	Streamed        bool   // entries were extracted while the package downloaded
	CacheHit        bool   // the package came from the cache (re-verified)
	SignedBy        string // id of the minisign key that verified it, or ""
	BytesDownloaded uint64
	PackageSize     uint64
	Entries         uint64
	Files           uint64
	Dirs            uint64
	Symlinks        uint64
	BytesWritten    uint64
	Fetch           time.Duration
	Extract         time.Duration
	Install         time.Duration
	Total           time.Duration
	// Warnings are leftovers of earlier runs that could not be removed (set
	// aside in the state directory, tried again by every later run); they
	// did not stop the deploy.
	Warnings []string
}

// Version returns the version of the loaded C library.
func Version() string { return C.GoString(C.zipdeploy_version()) }

// HeaderVersion is the version of the header this package was built with.
const HeaderVersion = C.ZIPDEPLOY_VERSION

// progressState is what the C callback reaches through its cgo.Handle.
type progressState struct {
	ctx        context.Context
	fn         func(Progress)
	panicked   bool
	panicValue any
}

// report calls the user's function, then tells the library whether to
// cancel. A panic in the user's function cancels the deploy and is
// re-raised by Deploy once the C call has returned: a Go panic must not
// unwind through the library's frames. A panic at the last event (stage
// install, once the tree is activated) cannot cancel, but is re-raised too.
func (s *progressState) report(p Progress) (cancel C.int) {
	defer func() {
		if r := recover(); r != nil {
			s.panicked, s.panicValue, cancel = true, r, 1
		}
	}()
	if s.fn != nil {
		s.fn(p)
	}
	if s.ctx.Err() != nil {
		return 1
	}
	return 0
}

// Deploy fetches, verifies, extracts and installs a package. Cancelling ctx
// cancels the deploy within about 100 ms, even while the server is stalled
// (an *Error with CodeCancelled that wraps ctx.Err()); on any error the
// destination is left exactly as it was.
func Deploy(ctx context.Context, opts Options) (Report, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		e := newError(C.ZIPDEPLOY_CANCELLED, "deploy cancelled: "+err.Error())
		e.cause = err
		return Report{}, e
	}
	d := C.zipdeploy_deploy_new()
	if d == nil {
		return Report{}, newError(C.ZIPDEPLOY_PANIC, "cannot create a deploy handle")
	}
	defer C.zipdeploy_deploy_free(d)
	if err := configure(d, opts); err != nil {
		return Report{}, err
	}

	state := &progressState{ctx: ctx, fn: opts.Progress}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	if status := setProgress(d, handle); status != C.ZIPDEPLOY_OK {
		return Report{}, lastError(d, status)
	}

	var report *C.zipdeploy_report
	var cerr *C.zipdeploy_error
	status := C.zipdeploy_deploy_run(d, &report, &cerr)
	if state.panicked {
		// Also after a success: the last event comes once the tree is
		// activated, and a panic there is not swallowed either.
		if status == C.ZIPDEPLOY_OK {
			C.zipdeploy_report_free(report)
		} else {
			C.zipdeploy_error_free(cerr)
		}
		panic(state.panicValue)
	}
	if status != C.ZIPDEPLOY_OK {
		e := takeError(cerr)
		if e.Code == CodeCancelled {
			e.cause = ctx.Err()
		}
		return Report{}, e
	}
	defer C.zipdeploy_report_free(report)
	var warnings []string
	for i := C.uint64_t(0); i < C.zipdeploy_report_warning_count(report); i++ {
		warnings = append(warnings, C.GoString(C.zipdeploy_report_warning(report, i)))
	}
	ms := func(v C.uint64_t) time.Duration { return time.Duration(v) * time.Millisecond }
	return Report{
		Digest:          C.GoString(C.zipdeploy_report_digest(report)),
		Source:          C.GoString(C.zipdeploy_report_source(report)),
		Dest:            C.GoString(C.zipdeploy_report_dest(report)),
		NoOp:            C.zipdeploy_report_noop(report) != 0,
		NotModified:     C.zipdeploy_report_not_modified(report) != 0,
		Streamed:        C.zipdeploy_report_streamed(report) != 0,
		CacheHit:        C.zipdeploy_report_cache_hit(report) != 0,
		SignedBy:        C.GoString(C.zipdeploy_report_signed_by(report)),
		BytesDownloaded: uint64(C.zipdeploy_report_bytes_downloaded(report)),
		PackageSize:     uint64(C.zipdeploy_report_package_size(report)),
		Entries:         uint64(C.zipdeploy_report_entries(report)),
		Files:           uint64(C.zipdeploy_report_files(report)),
		Dirs:            uint64(C.zipdeploy_report_dirs(report)),
		Symlinks:        uint64(C.zipdeploy_report_symlinks(report)),
		BytesWritten:    uint64(C.zipdeploy_report_bytes_written(report)),
		Fetch:           ms(C.zipdeploy_report_fetch_ms(report)),
		Extract:         ms(C.zipdeploy_report_extract_ms(report)),
		Install:         ms(C.zipdeploy_report_install_ms(report)),
		Total:           ms(C.zipdeploy_report_total_ms(report)),
		Warnings:        warnings,
	}, nil
}

// setProgress installs the trampoline on d, with the cgo.Handle of a
// *progressState as its userdata.
func setProgress(d *C.zipdeploy_deploy, handle cgo.Handle) C.int {
	return C.zipdeploy_go_set_progress(d, C.uintptr_t(handle))
}

// takeError turns an owned C error into an *Error and frees it.
func takeError(cerr *C.zipdeploy_error) *Error {
	defer C.zipdeploy_error_free(cerr)
	return newError(C.zipdeploy_error_code(cerr), C.GoString(C.zipdeploy_error_message(cerr)))
}

// lastError turns the handle's last failure into an *Error.
func lastError(d *C.zipdeploy_deploy, status C.int) error {
	return newError(status, C.GoString(C.zipdeploy_deploy_last_error(d)))
}

// millis rounds a positive duration up to whole milliseconds.
func millis(d time.Duration) C.uint64_t {
	return C.uint64_t((d + time.Millisecond - 1) / time.Millisecond)
}

func configure(d *C.zipdeploy_deploy, o Options) error {
	check := func(status C.int) error {
		if status == C.ZIPDEPLOY_OK {
			return nil
		}
		return lastError(d, status)
	}
	// withStrings passes Go strings as C strings (which cannot hold NUL).
	withStrings := func(what string, values []string, set func([]*C.char) C.int) error {
		cs := make([]*C.char, len(values))
		for i, v := range values {
			if strings.IndexByte(v, 0) >= 0 {
				return newError(C.ZIPDEPLOY_INVALID_ARGUMENT, what+" contains a NUL byte")
			}
			cs[i] = C.CString(v)
			defer C.free(unsafe.Pointer(cs[i]))
		}
		return check(set(cs))
	}
	// withString is withStrings for a single value.
	withString := func(what, value string, set func(*C.char) C.int) func() error {
		return func() error {
			return withStrings(what, []string{value}, func(s []*C.char) C.int { return set(s[0]) })
		}
	}
	steps := []func() error{
		withString("URL", o.URL, func(s *C.char) C.int { return C.zipdeploy_deploy_set_url(d, s) }),
		withString("Dest", o.Dest, func(s *C.char) C.int { return C.zipdeploy_deploy_set_dest(d, s) }),
	}
	if o.SHA256 != "" {
		steps = append(steps, withString("SHA256", o.SHA256, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_sha256(d, s)
		}))
	}
	if o.SHA256From != "" {
		steps = append(steps, withString("SHA256From", o.SHA256From, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_sha256_from(d, s)
		}))
	}
	for name, value := range o.Headers {
		name, value := name, value
		steps = append(steps, func() error {
			return withStrings("header "+name, []string{name, value}, func(s []*C.char) C.int {
				return C.zipdeploy_deploy_add_header(d, s[0], s[1])
			})
		})
	}
	for origin, headers := range o.HeadersFor {
		for name, value := range headers {
			origin, name, value := origin, name, value
			steps = append(steps, func() error {
				return withStrings("header "+name, []string{origin, name, value}, func(s []*C.char) C.int {
					return C.zipdeploy_deploy_add_header_for(d, s[0], s[1], s[2])
				})
			})
		}
	}
	for _, path := range o.CACertFiles {
		steps = append(steps, withString("CACertFiles", path, func(s *C.char) C.int {
			return C.zipdeploy_deploy_add_cacert_file(d, s)
		}))
	}
	if o.NoNetrc {
		steps = append(steps, func() error { return check(C.zipdeploy_deploy_set_netrc_file(d, nil)) })
	} else if o.NetrcFile != "" {
		steps = append(steps, withString("NetrcFile", o.NetrcFile, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_netrc_file(d, s)
		}))
	}
	if o.Timeout > 0 {
		steps = append(steps, func() error { return check(C.zipdeploy_deploy_set_timeout_ms(d, millis(o.Timeout))) })
	}
	if o.ConnectTimeout > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_connect_timeout_ms(d, millis(o.ConnectTimeout)))
		})
	}
	if o.StallTimeout > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_stall_timeout_ms(d, millis(o.StallTimeout)))
		})
	}
	if o.SpeedLimit != 0 || o.SpeedTime != 0 {
		limit, window := uint64(1024), C.uint64_t(30000)
		if o.SpeedLimit > 0 {
			limit = uint64(o.SpeedLimit)
		} else if o.SpeedLimit < 0 {
			limit = 0
		}
		if o.SpeedTime > 0 {
			window = millis(o.SpeedTime)
		}
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_speed_limit(d, C.uint64_t(limit), window))
		})
	}
	// withU32 passes a non-negative int as a C uint32_t, refusing one that
	// does not fit rather than wrapping it (Keep: 1<<32 would keep none).
	withU32 := func(what string, n int, set func(C.uint32_t) C.int) func() error {
		return func() error {
			if uint64(n) > math.MaxUint32 {
				return newError(C.ZIPDEPLOY_INVALID_ARGUMENT, fmt.Sprintf("%s %d is out of range", what, n))
			}
			return check(set(C.uint32_t(n)))
		}
	}
	if o.Retries != 0 {
		retries := o.Retries
		if retries < 0 {
			retries = 0
		}
		steps = append(steps, withU32("Retries", retries, func(n C.uint32_t) C.int {
			return C.zipdeploy_deploy_set_retries(d, n)
		}))
	}
	if o.Connections > 0 {
		steps = append(steps, withU32("Connections", o.Connections, func(n C.uint32_t) C.int {
			return C.zipdeploy_deploy_set_connections(d, n)
		}))
	}
	if o.Keep != 0 {
		keep := o.Keep
		if keep < 0 {
			keep = 0
		}
		steps = append(steps, withU32("Keep", keep, func(n C.uint32_t) C.int {
			return C.zipdeploy_deploy_set_keep(d, n)
		}))
	}
	if o.Sync {
		steps = append(steps, func() error { return check(C.zipdeploy_deploy_set_durable(d, 1)) })
	}
	if o.MaxDownload > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_download(d, C.uint64_t(o.MaxDownload)))
		})
	}
	if o.MaxTotalSize > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_total_size(d, C.uint64_t(o.MaxTotalSize)))
		})
	}
	if o.MaxEntries > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_entries(d, C.uint64_t(o.MaxEntries)))
		})
	}
	if o.MaxPathDepth > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_path_depth(d, C.uint64_t(o.MaxPathDepth)))
		})
	}
	if o.MaxPathLength > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_path_length(d, C.uint64_t(o.MaxPathLength)))
		})
	}
	if o.MaxMetadata > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_max_metadata(d, C.uint64_t(o.MaxMetadata)))
		})
	}
	for _, mirror := range o.Mirrors {
		steps = append(steps, withString("mirror", mirror, func(s *C.char) C.int {
			return C.zipdeploy_deploy_add_mirror(d, s)
		}))
	}
	if o.MinisignKey != "" {
		steps = append(steps, withString("MinisignKey", o.MinisignKey, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_minisign_key(d, s)
		}))
	}
	if o.MinisignSignatureURL != "" {
		steps = append(steps, withString("MinisignSignatureURL", o.MinisignSignatureURL, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_minisign_sig(d, s)
		}))
	}
	if o.CacheDir != "" {
		steps = append(steps, withString("CacheDir", o.CacheDir, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_cache(d, s)
		}))
	}
	if o.CacheMaxSize > 0 {
		steps = append(steps, func() error {
			return check(C.zipdeploy_deploy_set_cache_max_size(d, C.uint64_t(o.CacheMaxSize)))
		})
	}
	if o.S3Endpoint != "" {
		steps = append(steps, withString("S3Endpoint", o.S3Endpoint, func(s *C.char) C.int {
			return C.zipdeploy_deploy_set_s3_endpoint(d, s)
		}))
	}
	if o.S3PathStyle {
		steps = append(steps, func() error { return check(C.zipdeploy_deploy_set_s3_path_style(d, 1)) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
