package zipdeploy

/*
#include <stdint.h>
#include <stdlib.h>
#include "zipdeploy.h"
*/
import "C"

import (
	"context"
	"runtime/cgo"
	"strings"
	"time"
	"unsafe"
)

// Release is a package record: the one installed, or one kept for
// rollback. For a kept tree zipdeploy has no record of (one that was there
// before it), every field is zero.
type Release struct {
	Digest      string    // SHA-256 of the package (hex)
	Source      string    // package location, credentials redacted
	InstalledAt time.Time // when it was activated (zero when unknown)
	PackageSize uint64    // size of the package in bytes
}

// Status is what a destination holds.
type Status struct {
	// Dest is the destination directory (absolute).
	Dest string
	// Current is the installed package; nil when nothing is there or
	// zipdeploy has no record of what is.
	Current *Release
	// SignedBy is the id of the minisign key whose signature of the
	// installed package was verified, or "".
	SignedBy string
	// Kept are the releases kept for rollback, oldest first; Rollback brings
	// back the last.
	Kept []Release
}

// ReadStatus reads what is installed at dest. It writes nothing and takes
// no lock, so it does not wait for a deploy in progress. A destination with
// nothing installed is not an error: Status.Current is then nil.
func ReadStatus(dest string) (Status, error) {
	if strings.IndexByte(dest, 0) >= 0 {
		return Status{}, newError(C.ZIPDEPLOY_INVALID_ARGUMENT, "dest contains a NUL byte")
	}
	cdest := C.CString(dest)
	defer C.free(unsafe.Pointer(cdest))
	var status *C.zipdeploy_status
	var cerr *C.zipdeploy_error
	if code := C.zipdeploy_status_read(cdest, &status, &cerr); code != C.ZIPDEPLOY_OK {
		return Status{}, takeError(cerr)
	}
	defer C.zipdeploy_status_free(status)
	return goStatus(status), nil
}

// RollbackOptions configure a rollback. Zero values mean the library's
// defaults.
type RollbackOptions struct {
	// Sync syncs the rollback to disk (the restored release's record and
	// the renamed directories) before returning, so it also survives a
	// power cut (slower; off by default, like Options.Sync).
	Sync bool
	// Context, if set, cancels a rollback waiting for a deploy's lock
	// within about 100 ms: an *Error with CodeCancelled that wraps
	// Context.Err(), dest left as it was. Nil: the wait is not cancellable.
	Context context.Context
}

// Rollback swaps the most recent kept release back into dest, atomically
// and under the destination's lock; the tree it replaces becomes the newest
// kept release, so a second Rollback returns to where the first started.
// It returns the status after the rollback. With nothing kept the error has
// CodeNoRelease; on any error dest is left as it was. It is RollbackWith
// with the default RollbackOptions.
func Rollback(dest string) (Status, error) {
	return RollbackWith(dest, RollbackOptions{})
}

// RollbackWith is Rollback with options, e.g. RollbackOptions{Sync: true}
// for a rollback that survives a power cut.
func RollbackWith(dest string, opts RollbackOptions) (Status, error) {
	if strings.IndexByte(dest, 0) >= 0 {
		return Status{}, newError(C.ZIPDEPLOY_INVALID_ARGUMENT, "dest contains a NUL byte")
	}
	cdest := C.CString(dest)
	defer C.free(unsafe.Pointer(cdest))
	d := C.zipdeploy_deploy_new()
	if d == nil {
		return Status{}, newError(C.ZIPDEPLOY_PANIC, "cannot create a deploy handle")
	}
	defer C.zipdeploy_deploy_free(d)
	if code := C.zipdeploy_deploy_set_dest(d, cdest); code != C.ZIPDEPLOY_OK {
		return Status{}, lastError(d, code)
	}
	if opts.Sync {
		if code := C.zipdeploy_deploy_set_durable(d, 1); code != C.ZIPDEPLOY_OK {
			return Status{}, lastError(d, code)
		}
	}
	if ctx := opts.Context; ctx != nil {
		if err := ctx.Err(); err != nil {
			e := newError(C.ZIPDEPLOY_CANCELLED, "rollback cancelled: "+err.Error())
			e.cause = err
			return Status{}, e
		}
		// The progress callback is the heartbeat of the wait for the lock.
		handle := cgo.NewHandle(&progressState{ctx: ctx})
		defer handle.Delete()
		if code := setProgress(d, handle); code != C.ZIPDEPLOY_OK {
			return Status{}, lastError(d, code)
		}
	}
	var status *C.zipdeploy_status
	var cerr *C.zipdeploy_error
	if code := C.zipdeploy_deploy_rollback(d, &status, &cerr); code != C.ZIPDEPLOY_OK {
		e := takeError(cerr)
		if e.Code == CodeCancelled && opts.Context != nil {
			e.cause = opts.Context.Err()
		}
		return Status{}, e
	}
	defer C.zipdeploy_status_free(status)
	return goStatus(status), nil
}

// goStatus copies a C status into Go memory; the caller frees it.
func goStatus(s *C.zipdeploy_status) Status {
	unix := func(secs C.uint64_t) time.Time {
		if secs == 0 {
			return time.Time{}
		}
		return time.Unix(int64(secs), 0)
	}
	status := Status{
		Dest:     C.GoString(C.zipdeploy_status_dest(s)),
		SignedBy: C.GoString(C.zipdeploy_status_signed_by(s)),
	}
	if C.zipdeploy_status_installed(s) != 0 {
		status.Current = &Release{
			Digest:      C.GoString(C.zipdeploy_status_digest(s)),
			Source:      C.GoString(C.zipdeploy_status_source(s)),
			InstalledAt: unix(C.zipdeploy_status_installed_at(s)),
			PackageSize: uint64(C.zipdeploy_status_package_size(s)),
		}
	}
	n := C.zipdeploy_status_kept_count(s)
	status.Kept = make([]Release, 0, int(n))
	for i := C.uint64_t(0); i < n; i++ {
		status.Kept = append(status.Kept, Release{
			Digest:      C.GoString(C.zipdeploy_status_kept_digest(s, i)),
			Source:      C.GoString(C.zipdeploy_status_kept_source(s, i)),
			InstalledAt: unix(C.zipdeploy_status_kept_installed_at(s, i)),
			PackageSize: uint64(C.zipdeploy_status_kept_package_size(s, i)),
		})
	}
	return status
}
