package zipdeploy

// These tests deploy from a real HTTP server started by the Rust test suite
// (tests/ffi.rs), which passes its URLs in the environment. They fail, not
// skip, without it: run them through `cargo test --test ffi`.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
		URL:     env(t, "ZIPDEPLOY_TEST_URL"),
		Dest:    dest,
		SHA256:  sha,
		Retries: -1,
		Headers: map[string]string{"X-Test": "go"},
		Sync:    true,
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

func TestNULInAStringIsRefused(t *testing.T) {
	_, err := Deploy(context.Background(), Options{URL: "a\x00b", Dest: t.TempDir()})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("want code 23, got %v", err)
	}
}
