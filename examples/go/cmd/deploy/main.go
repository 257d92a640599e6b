// Command deploy deploys a ZIP package with the zipdeploy Go package:
//
//	deploy URL DEST [SHA256]
//
// Progress goes to stderr, the report to stdout. Ctrl-C cancels cleanly (the
// destination is left as it was). The exit status is the error class: 0
// success, 2 usage, 3 network, 4 digest, 5 archive, 6 limit, 7 filesystem,
// 8 hook, 9 cancelled, 1 internal.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"zipdeploy.example/zipdeploy"
)

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintf(os.Stderr, "usage: %s URL DEST [SHA256]\n", os.Args[0])
		os.Exit(2)
	}
	opts := zipdeploy.Options{URL: os.Args[1], Dest: os.Args[2]}
	if len(os.Args) == 4 {
		opts.SHA256 = os.Args[3]
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
	fmt.Printf("digest: %s\nnoop: %t\nfiles: %d\nbytes_written: %d\ntotal: %s\n",
		report.Digest, report.NoOp, report.Files, report.BytesWritten, report.Total)
}
