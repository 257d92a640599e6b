// Command deploy deploys a ZIP package with the zipdeploy Go package:
//
//	deploy [-mirror URL]... [-minisign-key KEY] [-cache DIR] [-sha256-from URL] URL DEST [SHA256]
//
// -mirror adds another location of the package, tried in order after URL;
// -minisign-key (base64 key or minisign.pub path) requires a signature at
// URL.minisig; -cache shares a download cache between deploys; -sha256-from
// reads the expected digest from a checksum file (e.g. URL.sha256).
//
// Progress goes to stderr, the report to stdout. Ctrl-C cancels cleanly (the
// destination is left as it was). The exit status is the error class: 0
// success, 2 usage, 3 network, 4 digest, 5 archive, 6 limit, 7 filesystem,
// 8 hook, 9 cancelled, 1 internal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/zipdeploy/zipdeploy/examples/go"
)

// mirrors collects the repeated -mirror flag.
type mirrors []string

func (m *mirrors) String() string     { return strings.Join(*m, ",") }
func (m *mirrors) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var opts zipdeploy.Options
	flag.Var((*mirrors)(&opts.Mirrors), "mirror", "another location of the package (repeatable)")
	flag.StringVar(&opts.MinisignKey, "minisign-key", "", "require a minisign signature by this key (base64 or .pub path)")
	flag.StringVar(&opts.CacheDir, "cache", "", "download cache directory")
	flag.StringVar(&opts.SHA256From, "sha256-from", "", "read the expected SHA-256 from this checksum file (URL or path)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-mirror URL]... [-minisign-key KEY] [-cache DIR] [-sha256-from URL] URL DEST [SHA256]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 || len(args) > 3 {
		flag.Usage()
		os.Exit(2)
	}
	opts.URL, opts.Dest = args[0], args[1]
	if len(args) == 3 {
		opts.SHA256 = args[2]
	}
	opts.Progress = func(p zipdeploy.Progress) {
		fmt.Fprintf(os.Stderr, "%s %d/%d bytes\n", p.Stage, p.Bytes, p.TotalBytes)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	report, err := zipdeploy.Deploy(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		var e *zipdeploy.Error
		if errors.As(err, &e) {
			stop()
			os.Exit(e.Class)
		}
		os.Exit(1)
	}
	fmt.Printf("digest: %s\nsource: %s\nnoop: %t\ncache_hit: %t\nsigned_by: %s\nfiles: %d\nbytes_written: %d\ntotal: %s\n",
		report.Digest, report.Source, report.NoOp, report.CacheHit, report.SignedBy,
		report.Files, report.BytesWritten, report.Total)
}
