package zipdeploy

// These tests deploy from a real HTTP server started by the Rust test suite
// (tests/ffi.rs), which passes its URLs in the environment. They fail, not
// skip, without it: run them through `cargo test --test ffi`.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// holdTheLock takes the deploy lock in the state dir stateDir (made if
// missing) as another deploy does, and releases it after 3 s, so that a
// wait that cannot be cancelled fails a test's timing check.
func holdTheLock(t *testing.T, stateDir string) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(3 * time.Second); lock.Close() }()
}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these tests with `cargo test --test ffi`", name)
	}
	return v
}

func readVersion(t *testing.T, dest string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dest, "VERSION"))
	if err != nil {
		t.Fatalf("reading VERSION: %v", err)
	}
	return string(b)
}

func TestVersionMatchesHeader(t *testing.T) {
	if Version() != HeaderVersion {
		t.Fatalf("library %s, header %s", Version(), HeaderVersion)
	}
}

func TestDeployReportsAndRedeploysAsNoOp(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	sha := env(t, "ZIPDEPLOY_TEST_SHA256")
	var stages []Stage
	opts := Options{
		URL:         env(t, "ZIPDEPLOY_TEST_URL"),
		Dest:        dest,
		SHA256:      sha,
		Retries:     -1,
		Connections: 2,
		Headers:     map[string]string{"X-Test": "go"},
		Sync:        true,
		Progress: func(p Progress) {
			if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
				stages = append(stages, p.Stage)
			}
		},
	}
	report, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if report.Digest != sha || report.NoOp || report.Files != 4 || report.Entries != 5 {
		t.Fatalf("unexpected report %+v", report)
	}
	if report.BytesDownloaded == 0 || report.BytesDownloaded != report.PackageSize {
		t.Fatalf("unexpected sizes %+v", report)
	}
	if report.Dest != dest || !strings.HasSuffix(report.Source, "/v1.zip") {
		t.Fatalf("unexpected paths %+v", report)
	}
	if report.Warnings != nil {
		t.Fatalf("warnings without a leftover: %q", report.Warnings)
	}
	want := []Stage{StageFetch, StageExtract, StageInstall}
	if len(stages) != 3 || stages[0] != want[0] || stages[1] != want[1] || stages[2] != want[2] {
		t.Fatalf("stages %v, want %v", stages, want)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("VERSION %q", v)
	}

	again, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatalf("second Deploy: %v", err)
	}
	if !again.NoOp || again.BytesDownloaded != 0 {
		t.Fatalf("second deploy is not a no-op: %+v", again)
	}
}

func TestHTTP404IsANetworkError(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	_, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL_404"), Dest: dest})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	if e.Code != 30 || CodeHTTPStatus != 30 || e.Class != ClassNetwork {
		t.Fatalf("want code 30 class 3, got %d class %d", e.Code, e.Class)
	}
	if !strings.Contains(e.Message, "404") {
		t.Fatalf("message does not name the status: %q", e.Message)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("DEST was created: %v", err)
	}
}

func TestInvalidDigestIsAUsageError(t *testing.T) {
	_, err := Deploy(context.Background(), Options{
		URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: filepath.Join(t.TempDir(), "app"), SHA256: "abc",
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidDigest || e.Class != ClassUsage {
		t.Fatalf("want code 21, got %v", err)
	}
}

func TestCancellingTheContextCancelsTheDeploy(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	if _, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest}); err != nil {
		t.Fatalf("first Deploy: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := 0
	_, err := Deploy(ctx, Options{
		URL:  env(t, "ZIPDEPLOY_TEST_URL_V2"),
		Dest: dest,
		Progress: func(Progress) {
			events++
			cancel() // as if another goroutine gave up
		},
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeCancelled || e.Class != ClassCancelled {
		t.Fatalf("want code 90, got %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error does not wrap context.Canceled: %v", err)
	}
	if events != 1 {
		t.Fatalf("deploy went on after the cancel: %d events", events)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("DEST changed: VERSION %q", v)
	}

	// A context cancelled up front never starts.
	_, err = Deploy(ctx, Options{URL: env(t, "ZIPDEPLOY_TEST_URL_V2"), Dest: dest})
	if !errors.As(err, &e) || e.Code != CodeCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("want code 90 wrapping context.Canceled, got %v", err)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("DEST changed: VERSION %q", v)
	}
}

func TestCancellingTheContextEndsAStalledDownloadWithinASecond(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	heartbeats := 0
	_, err := Deploy(ctx, Options{
		URL:      env(t, "ZIPDEPLOY_TEST_URL_STALLED"),
		Dest:     dest,
		Retries:  -1,
		Progress: func(Progress) { heartbeats++ },
	})
	if took := time.Since(started) - 400*time.Millisecond; took > time.Second {
		t.Fatalf("the cancel took %v after the deadline", took)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeCancelled || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want code 90 wrapping context.DeadlineExceeded, got %v", err)
	}
	if heartbeats < 3 {
		t.Fatalf("only %d progress calls while the server was silent", heartbeats)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("DEST exists after a cancelled first deploy: %v", err)
	}
}

func TestCancellingTheContextEndsAWaitForAnotherDeploysLockWithinASecond(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "app")
	// Another deploy to the same DEST holds its lock.
	holdTheLock(t, filepath.Join(dir, ".app.zipdeploy"))
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Deploy(ctx, Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest})
	if took := time.Since(started); took > time.Second {
		t.Fatalf("the cancel took %v", took)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeCancelled || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want code 90 wrapping context.DeadlineExceeded, got %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("DEST exists after a cancelled deploy: %v", err)
	}
}

func TestCancellingTheContextEndsARollbacksWaitForTheLockWithinASecond(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "app")
	if _, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest}); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	// A deploy holds the lock.
	holdTheLock(t, filepath.Join(dir, ".app.zipdeploy"))
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := RollbackWith(dest, RollbackOptions{Context: ctx})
	if took := time.Since(started); took > time.Second {
		t.Fatalf("the cancel took %v", took)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeCancelled || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want code 90 wrapping context.DeadlineExceeded, got %v", err)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("VERSION %q", v)
	}
}

func TestPathAndMetadataLimitsAreOptions(t *testing.T) {
	url := env(t, "ZIPDEPLOY_TEST_URL")
	dest := filepath.Join(t.TempDir(), "app")
	// v1 holds static/app.css: 14 bytes, two components.
	for _, o := range []Options{{MaxPathDepth: 1}, {MaxPathLength: 13}} {
		o.URL, o.Dest = url, dest
		_, err := Deploy(context.Background(), o)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeLimitExceeded || !strings.Contains(e.Message, "static/app.css") {
			t.Fatalf("%+v: want code 60 naming static/app.css, got %v", o, err)
		}
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("DEST exists after refused deploys: %v", err)
	}
	report, err := Deploy(context.Background(), Options{
		URL: url, Dest: dest, MaxPathDepth: 2, MaxPathLength: 14, MaxMetadata: 1 << 20,
	})
	if err != nil || report.Entries != 5 {
		t.Fatalf("Deploy within the limits: %+v, %v", report, err)
	}
}

func TestHeadersForGoToTheirOriginOnly(t *testing.T) {
	private := env(t, "ZIPDEPLOY_TEST_URL_PRIVATE") // 403 without X-Mirror-Token: m1
	origin := strings.TrimSuffix(private, "/private.zip")
	token := map[string]string{"X-Mirror-Token": "m1"}
	dest := filepath.Join(t.TempDir(), "app")
	_, err := Deploy(context.Background(), Options{
		URL: private, Dest: dest, Retries: -1,
		HeadersFor: map[string]map[string]string{"http://127.0.0.2:1": token},
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeHTTPStatus || strings.Contains(e.Message, "m1") {
		t.Fatalf("a header for another origin was sent, or shown: %v", err)
	}
	report, err := Deploy(context.Background(), Options{
		URL: env(t, "ZIPDEPLOY_TEST_URL_404"), Dest: dest, Retries: -1,
		SHA256:     env(t, "ZIPDEPLOY_TEST_SHA256"),
		Mirrors:    []string{private},
		HeadersFor: map[string]map[string]string{origin: token},
	})
	if err != nil || report.Source != private {
		t.Fatalf("the mirror's own token did not reach it: %+v, %v", report, err)
	}
	_, err = Deploy(context.Background(), Options{
		URL: private, Dest: dest, HeadersFor: map[string]map[string]string{"ftp://x": token},
	})
	if !errors.As(err, &e) || e.Code != CodeInvalidURL {
		t.Fatalf("want code 20 for a non-http origin, got %v", err)
	}
}

func TestTheLowSpeedRuleCutsAStalledDownload(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	started := time.Now()
	_, err := Deploy(context.Background(), Options{
		URL:        env(t, "ZIPDEPLOY_TEST_URL_STALLED"),
		Dest:       dest,
		Retries:    -1,
		SpeedLimit: 1000,
		SpeedTime:  500 * time.Millisecond,
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTimeout || e.Class != ClassNetwork {
		t.Fatalf("want code 32, got %v", err)
	}
	if !strings.Contains(e.Message, "low speed") {
		t.Fatalf("the error does not name the low speed: %v", err)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
}

func TestErrorsMatchTheSentinelOfTheirClass(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	_, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL_404"), Dest: dest, Retries: -1})
	if !errors.Is(err, ErrNetwork) {
		t.Fatalf("404: want errors.Is(err, ErrNetwork), got %v", err)
	}
	for _, other := range []error{ErrInternal, ErrUsage, ErrDigest, ErrArchive, ErrLimit, ErrFilesystem, ErrHook, ErrCancelled} {
		if errors.Is(err, other) {
			t.Fatalf("404 also matches %v", other)
		}
	}
	_, err = Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest, SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrDigest) || errors.Is(err, ErrNetwork) {
		t.Fatalf("mismatch: want ErrDigest only, got %v", err)
	}
	_, err = Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest, SHA256: "abc"})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("bad digest: want ErrUsage, got %v", err)
	}
	_, err = Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest, MaxEntries: 1})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxEntries 1: want ErrLimit, got %v", err)
	}
	_, err = Rollback(dest)
	if !errors.Is(err, ErrFilesystem) {
		t.Fatalf("rollback with nothing kept: want ErrFilesystem, got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Deploy(ctx, Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest})
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: want ErrCancelled and context.Canceled, got %v", err)
	}
	if _, statErr := os.Stat(dest); !os.IsNotExist(statErr) {
		t.Fatalf("DEST was created: %v", statErr)
	}
}

func TestAPanicInProgressCancelsAndIsReraised(t *testing.T) {
	url := env(t, "ZIPDEPLOY_TEST_URL")
	dest := filepath.Join(t.TempDir(), "app")
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("want the panic re-raised, got %v", r)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Fatalf("DEST was created: %v", err)
		}
	}()
	_, _ = Deploy(context.Background(), Options{
		URL:      url,
		Dest:     dest,
		Progress: func(Progress) { panic("boom") },
	})
	t.Fatal("Deploy returned")
}

func TestAPanicAtTheLastEventIsReraisedAfterTheDeploy(t *testing.T) {
	url := env(t, "ZIPDEPLOY_TEST_URL")
	dest := filepath.Join(t.TempDir(), "app")
	defer func() {
		if r := recover(); r != "boom at install" {
			t.Fatalf("want the panic re-raised, got %v", r)
		}
		// The last event comes after activation: the deploy had completed.
		if v := readVersion(t, dest); v != "1" {
			t.Fatalf("VERSION %q", v)
		}
	}()
	_, _ = Deploy(context.Background(), Options{
		URL:  url,
		Dest: dest,
		Progress: func(p Progress) {
			if p.Stage == StageInstall {
				panic("boom at install")
			}
		},
	})
	t.Fatal("Deploy returned: the panic was swallowed")
}

func TestACountTooBigForItsCTypeIsRefused(t *testing.T) {
	if math.MaxInt == math.MaxInt32 {
		t.Fatal("a 64-bit int is needed to test a count above MaxUint32")
	}
	url := env(t, "ZIPDEPLOY_TEST_URL")
	limit := uint64(math.MaxUint32)
	big := int(limit + 1) // as a uint32_t: 0
	for name, opts := range map[string]Options{
		"Keep":        {Keep: big},
		"Retries":     {Retries: big + 3},
		"Connections": {Connections: big + 1},
	} {
		dest := filepath.Join(t.TempDir(), "app")
		opts.URL, opts.Dest = url, dest
		_, err := Deploy(context.Background(), opts)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidArgument || !strings.Contains(e.Message, name) {
			t.Fatalf("%s: want code 23 naming it, got %v", name, err)
		}
		if _, statErr := os.Stat(dest); !os.IsNotExist(statErr) {
			t.Fatalf("%s: DEST was created: %v", name, statErr)
		}
	}
}

func TestNULInAStringIsRefused(t *testing.T) {
	_, err := Deploy(context.Background(), Options{URL: "a\x00b", Dest: t.TempDir()})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("want code 23, got %v", err)
	}
}

func TestCACertFilesMakeAPrivateCATrusted(t *testing.T) {
	resp, err := http.Get(env(t, "ZIPDEPLOY_TEST_URL"))
	if err != nil {
		t.Fatalf("fetching the package: %v", err)
	}
	pkg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the package: %v", err)
	}
	// The repository's test CA signed this certificate for 127.0.0.1.
	fixtures := filepath.Join("..", "..", "tests", "fixtures", "tls")
	cert, err := tls.LoadX509KeyPair(filepath.Join(fixtures, "server.pem"), filepath.Join(fixtures, "server.key"))
	if err != nil {
		t.Fatalf("loading the test certificate: %v", err)
	}
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(pkg)
	}))
	server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	server.StartTLS()
	defer server.Close()
	opts := Options{URL: server.URL + "/app.zip", Dest: filepath.Join(t.TempDir(), "app"), Retries: -1}

	_, err = Deploy(context.Background(), opts)
	if e := wantCode(t, err, CodeTLS); e.Class != ClassNetwork {
		t.Fatalf("untrusted: class %d", e.Class)
	}
	opts.CACertFiles = []string{filepath.Join(fixtures, "ca.pem")}
	if _, err := Deploy(context.Background(), opts); err != nil {
		t.Fatalf("Deploy with the test CA: %v", err)
	}
	if v := readVersion(t, opts.Dest); v != "1" {
		t.Fatalf("VERSION %q", v)
	}
	opts.CACertFiles = []string{filepath.Join(fixtures, "server.key")}
	wantCode(t, func() error { _, err := Deploy(context.Background(), opts); return err }(), CodeConfig)
	opts.CACertFiles = []string{filepath.Join(fixtures, "missing.pem")}
	wantCode(t, func() error { _, err := Deploy(context.Background(), opts); return err }(), CodeIO)
}

func TestNetrcFileGivesCredentialsToItsHost(t *testing.T) {
	resp, err := http.Get(env(t, "ZIPDEPLOY_TEST_URL"))
	if err != nil {
		t.Fatalf("fetching the package: %v", err)
	}
	pkg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the package: %v", err)
	}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, password, ok := r.BasicAuth(); !ok || user != "alice" || password != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write(pkg)
	}))
	defer server.Close()
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{URL: server.URL + "/app.zip", Dest: filepath.Join(t.TempDir(), "app"), Retries: -1, NoNetrc: true}
	wantCode(t, func() error { _, err := Deploy(context.Background(), opts); return err }(), CodeHTTPStatus)
	opts.NoNetrc, opts.NetrcFile = false, netrc
	if _, err := Deploy(context.Background(), opts); err != nil {
		t.Fatalf("Deploy with the netrc file: %v", err)
	}
	if err := os.Chmod(netrc, 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Dest = filepath.Join(t.TempDir(), "app")
	e := wantCode(t, func() error { _, err := Deploy(context.Background(), opts); return err }(), CodeConfig)
	if !strings.Contains(e.Message, netrc) || !strings.Contains(e.Message, "chmod 600") {
		t.Fatalf("message %q", e.Message)
	}
}

// wantCode fails unless err is an *Error with that code.
func wantCode(t *testing.T, err error, code int) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("want code %d, got %v", code, err)
	}
	return e
}

func TestStatusAndRollback(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	sha := env(t, "ZIPDEPLOY_TEST_SHA256")
	url, urlV2 := env(t, "ZIPDEPLOY_TEST_URL"), env(t, "ZIPDEPLOY_TEST_URL_V2")

	empty, err := ReadStatus(dest)
	if err != nil {
		t.Fatalf("ReadStatus before any deploy: %v", err)
	}
	if empty.Current != nil || len(empty.Kept) != 0 || empty.Dest != dest {
		t.Fatalf("unexpected status of an empty destination %+v", empty)
	}
	_, err = Rollback(dest)
	if e := wantCode(t, err, CodeNoRelease); e.Class != ClassFilesystem {
		t.Fatalf("want class 7, got %d", e.Class)
	}

	before := time.Now().Add(-time.Minute)
	first, err := Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256: sha})
	if err != nil {
		t.Fatalf("Deploy v1: %v", err)
	}
	second, err := Deploy(context.Background(), Options{URL: urlV2, Dest: dest, Keep: 1})
	if err != nil {
		t.Fatalf("Deploy v2: %v", err)
	}
	if second.Digest == sha || readVersion(t, dest) != "2" {
		t.Fatalf("v2 not installed: %+v", second)
	}

	status, err := ReadStatus(dest)
	if err != nil {
		t.Fatalf("ReadStatus: %v", err)
	}
	if status.Dest != dest || status.Current == nil || status.SignedBy != "" {
		t.Fatalf("unexpected status %+v", status)
	}
	cur := *status.Current
	if cur.Digest != second.Digest || cur.Source != urlV2 || cur.PackageSize != second.PackageSize {
		t.Fatalf("installed release %+v, deployed %+v", cur, second)
	}
	if cur.InstalledAt.Before(before) || cur.InstalledAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("installed at %v", cur.InstalledAt)
	}
	if len(status.Kept) != 1 {
		t.Fatalf("want one kept release, got %+v", status.Kept)
	}
	kept := status.Kept[0]
	if kept.Digest != sha || kept.Source != url || kept.PackageSize != first.PackageSize || kept.InstalledAt.IsZero() {
		t.Fatalf("kept release %+v, first deploy %+v", kept, first)
	}

	back, err := Rollback(dest)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("after Rollback VERSION %q", v)
	}
	if back.Current == nil || back.Current.Digest != sha || back.Current.Source != url {
		t.Fatalf("status after Rollback %+v", back)
	}
	if len(back.Kept) != 1 || back.Kept[0].Digest != second.Digest {
		t.Fatalf("after Rollback the replaced tree is not kept: %+v", back.Kept)
	}
	reread, err := ReadStatus(dest)
	if err != nil {
		t.Fatalf("ReadStatus after Rollback: %v", err)
	}
	if reread.Current == nil || *reread.Current != *back.Current || len(reread.Kept) != 1 || reread.Kept[0] != back.Kept[0] {
		t.Fatalf("ReadStatus %+v disagrees with Rollback %+v", reread, back)
	}

	// A second rollback returns to where the first started.
	again, err := Rollback(dest)
	if err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	if readVersion(t, dest) != "2" || again.Current == nil || again.Current.Digest != second.Digest {
		t.Fatalf("second Rollback: VERSION %q, status %+v", readVersion(t, dest), again)
	}

	_, err = ReadStatus("a\x00b")
	wantCode(t, err, CodeInvalidArgument)
	_, err = Rollback("")
	wantCode(t, err, CodeConfig)
}

func TestMirrorsAreTriedInOrder(t *testing.T) {
	var hits int32
	missing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&hits, 1)
		http.NotFound(w, r)
	}))
	defer missing.Close()
	url := env(t, "ZIPDEPLOY_TEST_URL")
	dest := filepath.Join(t.TempDir(), "app")

	report, err := Deploy(context.Background(), Options{
		URL:     env(t, "ZIPDEPLOY_TEST_URL_404"),
		Mirrors: []string{missing.URL + "/app.zip", url},
		Dest:    dest,
		SHA256:  env(t, "ZIPDEPLOY_TEST_SHA256"),
		Retries: -1,
	})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if report.Source != url || readVersion(t, dest) != "1" {
		t.Fatalf("not installed from the second mirror: %+v", report)
	}
	if !report.Streamed || report.CacheHit || report.SignedBy != "" {
		t.Fatalf("unexpected report %+v", report)
	}
	if n := atomic.LoadInt32(&hits); n != 1 {
		t.Fatalf("the first mirror was asked %d times, want 1", n)
	}

	// Every location failing is one error that names each.
	_, err = Deploy(context.Background(), Options{
		URL:     env(t, "ZIPDEPLOY_TEST_URL_404"),
		Mirrors: []string{missing.URL + "/app.zip"},
		Dest:    filepath.Join(t.TempDir(), "app"),
		Retries: -1,
	})
	e := wantCode(t, err, CodeMirrorsFailed)
	if e.Class != ClassNetwork || !strings.Contains(e.Message, missing.URL) {
		t.Fatalf("unexpected error %+v", e)
	}

	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, Mirrors: []string{"ftp://x/app.zip"}})
	wantCode(t, err, CodeInvalidURL)
	_, err = Deploy(context.Background(), Options{URL: "s3://b/app.zip", Dest: dest, S3Endpoint: "ftp://x", S3PathStyle: true})
	if e := wantCode(t, err, CodeInvalidURL); !strings.Contains(e.Message, "endpoint") {
		t.Fatalf("unexpected error %+v", e)
	}
}

func TestAnUnchangedPackageIsNotModified(t *testing.T) {
	opts := Options{URL: env(t, "ZIPDEPLOY_TEST_URL_CONDITIONAL"), Dest: filepath.Join(t.TempDir(), "app")}
	first, err := Deploy(context.Background(), opts)
	if err != nil || first.NoOp || first.NotModified {
		t.Fatalf("first deploy: %+v, %v", first, err)
	}
	again, err := Deploy(context.Background(), opts)
	if err != nil || !again.NoOp || !again.NotModified || again.BytesDownloaded != 0 || again.Digest != first.Digest {
		t.Fatalf("second deploy is not a 304 no-op: %+v, %v", again, err)
	}
}

func TestTheCacheServesASecondDeploy(t *testing.T) {
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "cache")
	sha := env(t, "ZIPDEPLOY_TEST_SHA256")
	opts := Options{
		URL:          env(t, "ZIPDEPLOY_TEST_URL"),
		Dest:         filepath.Join(tmp, "one"),
		SHA256:       sha,
		CacheDir:     cache,
		CacheMaxSize: 1 << 30,
	}
	first, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatalf("first Deploy: %v", err)
	}
	if first.CacheHit || first.BytesDownloaded != first.PackageSize {
		t.Fatalf("first deploy %+v", first)
	}
	if _, err := os.Stat(filepath.Join(cache, "sha256", sha+".zip")); err != nil {
		t.Fatalf("package not cached: %v", err)
	}

	opts.Dest = filepath.Join(tmp, "two")
	second, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatalf("second Deploy: %v", err)
	}
	if !second.CacheHit || second.NoOp || second.BytesDownloaded != 0 || second.Digest != sha {
		t.Fatalf("second deploy is not a cache hit: %+v", second)
	}
	if v := readVersion(t, opts.Dest); v != "1" {
		t.Fatalf("VERSION %q", v)
	}

	opts.CacheDir, opts.CacheMaxSize = "", 0
	opts.Dest = filepath.Join(tmp, "three")
	third, err := Deploy(context.Background(), opts)
	if err != nil || third.CacheHit {
		t.Fatalf("without CacheDir: %+v, %v", third, err)
	}
}

// keyID is the id of a minisign public key as minisign shows it: bytes 2..10
// of the key, a little-endian number, in upper-case hex.
func keyID(t *testing.T, key string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 42 {
		t.Fatalf("not a minisign public key: %q", key)
	}
	id := ""
	for i := 9; i >= 2; i-- {
		id += fmt.Sprintf("%02X", raw[i])
	}
	return id
}

func TestMinisignSignatures(t *testing.T) {
	key := env(t, "ZIPDEPLOY_TEST_MINISIGN_KEY")
	url, urlV2 := env(t, "ZIPDEPLOY_TEST_URL"), env(t, "ZIPDEPLOY_TEST_URL_V2")
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "app")

	// The signature is fetched from URL + ".minisig".
	report, err := Deploy(context.Background(), Options{URL: url, Dest: dest, MinisignKey: key})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	id := keyID(t, key)
	if report.SignedBy != id || !regexp.MustCompile(`^[0-9A-F]{16}$`).MatchString(id) {
		t.Fatalf("SignedBy %q, key id %q", report.SignedBy, id)
	}
	status, err := ReadStatus(dest)
	if err != nil || status.SignedBy != id {
		t.Fatalf("status %+v, %v", status, err)
	}

	// The key from a minisign.pub file, the signature named explicitly.
	pub := filepath.Join(tmp, "minisign.pub")
	if err := os.WriteFile(pub, []byte("untrusted comment: minisign public key "+id+"\n"+key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tmp, "other")
	report, err = Deploy(context.Background(), Options{
		URL: url, Dest: other, MinisignKey: pub, MinisignSignatureURL: url + ".minisig",
	})
	if err != nil || report.SignedBy != id {
		t.Fatalf("with a key file: %+v, %v", report, err)
	}

	// v2 with v1's signature: refused.
	_, err = Deploy(context.Background(), Options{
		URL: urlV2, Dest: dest, MinisignKey: key, MinisignSignatureURL: url + ".minisig",
	})
	if e := wantCode(t, err, CodeSignatureInvalid); e.Class != ClassDigest || !strings.Contains(e.Message, id) {
		t.Fatalf("unexpected error %+v", e)
	}
	// v2 has no signature at all.
	_, err = Deploy(context.Background(), Options{URL: urlV2, Dest: dest, MinisignKey: key, Retries: -1})
	if e := wantCode(t, err, CodeSignatureMissing); e.Class != ClassDigest {
		t.Fatalf("unexpected error %+v", e)
	}
	// v1's signature does not verify with another key.
	raw := make([]byte, 42)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	copy(raw, "Ed")
	_, err = Deploy(context.Background(), Options{
		URL: url, Dest: dest, MinisignKey: base64.StdEncoding.EncodeToString(raw),
	})
	wantCode(t, err, CodeSignatureInvalid)
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("DEST changed: VERSION %q", v)
	}

	// Not a key, and no such key file.
	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, MinisignKey: "RWQnotakey"})
	if e := wantCode(t, err, CodeIO); e.Class != ClassFilesystem {
		t.Fatalf("unexpected error %+v", e)
	}
	if err := os.WriteFile(pub, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, MinisignKey: pub})
	wantCode(t, err, CodeConfig)
}

// sidecarDigest fetches a sidecar over HTTP and returns the digest on its
// one line.
func sidecarDigest(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	fields := strings.Fields(string(body))
	if len(fields) != 2 || len(fields[0]) != 64 {
		t.Fatalf("unexpected sidecar %q", body)
	}
	return fields[0]
}

func TestTheDigestFromASidecar(t *testing.T) {
	url, urlV2 := env(t, "ZIPDEPLOY_TEST_URL"), env(t, "ZIPDEPLOY_TEST_URL_V2")
	sidecar := url + ".sha256"
	want := sidecarDigest(t, sidecar)
	if want != env(t, "ZIPDEPLOY_TEST_SHA256") {
		t.Fatalf("the server's sidecar says %s, v1 is %s", want, env(t, "ZIPDEPLOY_TEST_SHA256"))
	}
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "app")

	// Only the sidecar's location: its digest is the one expected.
	report, err := Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256From: sidecar, Retries: -1})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if report.Digest != want || report.NoOp || report.BytesDownloaded != report.PackageSize || readVersion(t, dest) != "1" {
		t.Fatalf("unexpected report %+v", report)
	}
	// With the digest known up front, the same package again is a no-op.
	again, err := Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256From: sidecar})
	if err != nil || !again.NoOp || again.BytesDownloaded != 0 || again.Digest != want {
		t.Fatalf("second deploy is not a no-op: %+v, %v", again, err)
	}
	before, err := ReadStatus(dest)
	if err != nil || before.Current == nil || before.Current.Digest != want {
		t.Fatalf("status %+v, %v", before, err)
	}
	unchanged := func(what string) {
		t.Helper()
		if v := readVersion(t, dest); v != "1" {
			t.Fatalf("%s: DEST changed: VERSION %q", what, v)
		}
		now, err := ReadStatus(dest)
		if err != nil || now.Current == nil || *now.Current != *before.Current || len(now.Kept) != len(before.Kept) {
			t.Fatalf("%s: status %+v, was %+v (%v)", what, now, before, err)
		}
	}

	// A sidecar with the wrong digest: v2 checked against v1's sidecar
	// (served by the test server; one line counts whatever file it names)
	// into a fresh destination, and against a local sidecar of zeros.
	fresh := filepath.Join(tmp, "fresh")
	_, err = Deploy(context.Background(), Options{URL: urlV2, Dest: fresh, SHA256From: sidecar, Retries: -1})
	if e := wantCode(t, err, CodeDigestMismatch); e.Class != ClassDigest || !strings.Contains(e.Message, "mismatch") {
		t.Fatalf("unexpected error %+v", e)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("DEST was created: %v", err)
	}
	zeros := filepath.Join(tmp, "v2.zip.sha256")
	if err := os.WriteFile(zeros, []byte(strings.Repeat("0", 64)+"  v2.zip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Deploy(context.Background(), Options{URL: urlV2, Dest: dest, SHA256From: zeros, Retries: -1})
	wantCode(t, err, CodeDigestMismatch)
	unchanged("v2 with a sidecar of zeros")
	// Where v1 is installed, v1's digest from the sidecar makes v2's URL a
	// no-op: the digest, not the URL, names the package.
	noop, err := Deploy(context.Background(), Options{URL: urlV2, Dest: dest, SHA256From: sidecar})
	if err != nil || !noop.NoOp || noop.BytesDownloaded != 0 {
		t.Fatalf("v2's URL with v1's sidecar over v1: %+v, %v", noop, err)
	}
	unchanged("v2's URL with v1's sidecar over v1")

	// Unusable sidecars: code 43, class 4, the message names the sidecar.
	// An error page served with 200, and two lines of which none names
	// the package.
	other := strings.Repeat("a", 64) + "  other.zip\n" + strings.Repeat("b", 64) + "  third.zip\n"
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page.sha256":
			_, _ = io.WriteString(w, "<html><body>Not here</body></html>\n")
		case "/two.sha256":
			_, _ = io.WriteString(w, other)
		default:
			http.NotFound(w, r)
		}
	}))
	defer garbage.Close()
	for _, side := range []struct{ path, reason string }{
		{"/page.sha256", "line 1: invalid SHA-256 digest"},
		{"/two.sha256", `none for "v2.zip"`},
	} {
		_, err = Deploy(context.Background(), Options{URL: urlV2, Dest: dest, SHA256From: garbage.URL + side.path, Retries: -1})
		e := wantCode(t, err, CodeDigestSidecar)
		if CodeDigestSidecar != 43 || e.Class != ClassDigest ||
			!strings.Contains(e.Message, garbage.URL+side.path) || !strings.Contains(e.Message, side.reason) {
			t.Fatalf("%s: unexpected error %+v", side.path, e)
		}
		unchanged(side.path)
	}
	// A fresh destination is not created either.
	_, err = Deploy(context.Background(), Options{URL: url, Dest: fresh, SHA256From: garbage.URL + "/page.sha256"})
	wantCode(t, err, CodeDigestSidecar)
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("DEST was created: %v", err)
	}

	// A sidecar that cannot be fetched fails as the package would.
	_, err = Deploy(context.Background(), Options{
		URL: urlV2, Dest: dest, SHA256From: env(t, "ZIPDEPLOY_TEST_URL_404") + ".sha256", Retries: -1,
	})
	if e := wantCode(t, err, CodeHTTPStatus); !strings.Contains(e.Message, "404") {
		t.Fatalf("unexpected error %+v", e)
	}
	unchanged("a missing sidecar")

	// Not with SHA256 too, and only a usable location.
	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256: want, SHA256From: sidecar})
	wantCode(t, err, CodeConfig)
	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256From: "ftp://x/v1.zip.sha256"})
	wantCode(t, err, CodeInvalidURL)
	_, err = Deploy(context.Background(), Options{URL: url, Dest: dest, SHA256From: "a\x00b"})
	wantCode(t, err, CodeInvalidArgument)
	unchanged("refused options")
}

func TestASyncedRollback(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "app")
	sha := env(t, "ZIPDEPLOY_TEST_SHA256")
	sync := RollbackOptions{Sync: true}

	_, err := RollbackWith(dest, sync)
	wantCode(t, err, CodeNoRelease)
	if _, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL"), Dest: dest, Sync: true}); err != nil {
		t.Fatalf("Deploy v1: %v", err)
	}
	second, err := Deploy(context.Background(), Options{URL: env(t, "ZIPDEPLOY_TEST_URL_V2"), Dest: dest, Sync: true})
	if err != nil || readVersion(t, dest) != "2" {
		t.Fatalf("Deploy v2: %+v, %v", second, err)
	}

	back, err := RollbackWith(dest, sync)
	if err != nil {
		t.Fatalf("RollbackWith: %v", err)
	}
	if v := readVersion(t, dest); v != "1" {
		t.Fatalf("after RollbackWith VERSION %q", v)
	}
	if back.Dest != dest || back.Current == nil || back.Current.Digest != sha {
		t.Fatalf("status after RollbackWith %+v", back)
	}
	if len(back.Kept) != 1 || back.Kept[0].Digest != second.Digest {
		t.Fatalf("after RollbackWith the replaced tree is not kept: %+v", back.Kept)
	}
	reread, err := ReadStatus(dest)
	if err != nil || reread.Current == nil || *reread.Current != *back.Current ||
		len(reread.Kept) != 1 || reread.Kept[0] != back.Kept[0] {
		t.Fatalf("ReadStatus %+v disagrees with RollbackWith %+v (%v)", reread, back, err)
	}

	// And forward again, synced too.
	again, err := RollbackWith(dest, sync)
	if err != nil || readVersion(t, dest) != "2" || again.Current == nil || again.Current.Digest != second.Digest {
		t.Fatalf("second RollbackWith: %+v, %v", again, err)
	}

	_, err = RollbackWith("", sync)
	wantCode(t, err, CodeConfig)
	_, err = RollbackWith("a\x00b", sync)
	wantCode(t, err, CodeInvalidArgument)
}
