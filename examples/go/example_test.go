package zipdeploy_test

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/zipdeploy/zipdeploy/examples/go"
)

// writePackage writes a small application package (a VERSION file and an
// index page) to dir and returns its path and SHA-256. A real deploy takes
// an https:// URL instead of the path.
func writePackage(dir, version string) (path, sha string) {
	path = filepath.Join(dir, "app-"+version+".zip")
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	w := zip.NewWriter(f)
	for name, body := range map[string]string{
		"VERSION":           version,
		"public/index.html": "<h1>version " + version + "</h1>\n",
	} {
		entry, err := w.Create(name)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := entry.Write([]byte(body)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

func tempDir() string {
	dir, err := os.MkdirTemp("", "zipdeploy-example")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

func ExampleDeploy() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	pkg, sha := writePackage(dir, "1")
	dest := filepath.Join(dir, "app")

	report, err := zipdeploy.Deploy(context.Background(), zipdeploy.Options{URL: pkg, Dest: dest, SHA256: sha})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("files:", report.Files, "noop:", report.NoOp, "digest ok:", report.Digest == sha)
	version, _ := os.ReadFile(filepath.Join(dest, "VERSION"))
	fmt.Println("VERSION:", string(version))

	// The same digest again: nothing to do.
	again, err := zipdeploy.Deploy(context.Background(), zipdeploy.Options{URL: pkg, Dest: dest, SHA256: sha})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("noop:", again.NoOp)
	// Output:
	// files: 2 noop: false digest ok: true
	// VERSION: 1
	// noop: true
}

func ExampleError() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	pkg, _ := writePackage(dir, "1")
	dest := filepath.Join(dir, "app")

	_, err := zipdeploy.Deploy(context.Background(), zipdeploy.Options{
		URL: pkg, Dest: dest, SHA256: strings.Repeat("0", 64),
	})
	// The class, with errors.Is ...
	fmt.Println("digest error:", errors.Is(err, zipdeploy.ErrDigest))
	fmt.Println("network error:", errors.Is(err, zipdeploy.ErrNetwork))
	// ... and the details, with errors.As.
	var e *zipdeploy.Error
	if errors.As(err, &e) {
		fmt.Println("code:", e.Code, "class:", e.Class, "mismatch:", e.Code == zipdeploy.CodeDigestMismatch)
	}
	_, statErr := os.Stat(dest)
	fmt.Println("dest created:", !os.IsNotExist(statErr))
	// Output:
	// digest error: true
	// network error: false
	// code: 40 class: 4 mismatch: true
	// dest created: false
}

func ExampleRollback() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	dest := filepath.Join(dir, "app")
	for _, version := range []string{"1", "2"} {
		pkg, sha := writePackage(dir, version)
		if _, err := zipdeploy.Deploy(context.Background(), zipdeploy.Options{URL: pkg, Dest: dest, SHA256: sha}); err != nil {
			log.Fatal(err)
		}
	}
	status, err := zipdeploy.Rollback(dest)
	if err != nil {
		log.Fatal(err)
	}
	version, _ := os.ReadFile(filepath.Join(dest, "VERSION"))
	fmt.Println("VERSION:", string(version), "kept:", len(status.Kept))

	// Nothing is kept before the first deploy.
	_, err = zipdeploy.Rollback(filepath.Join(dir, "empty"))
	fmt.Println("filesystem error:", errors.Is(err, zipdeploy.ErrFilesystem))
	// Output:
	// VERSION: 1 kept: 1
	// filesystem error: true
}
