package zipdeploy

/*
#include "zipdeploy.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// zipdeployGoProgress is called by the C trampoline in zipdeploy.go for every
// progress event; userdata is the cgo.Handle of a *progressState. It returns
// non-zero to cancel the deploy.
//
//export zipdeployGoProgress
func zipdeployGoProgress(userdata unsafe.Pointer, p *C.zipdeploy_progress) C.int {
	state, ok := cgo.Handle(uintptr(userdata)).Value().(*progressState)
	if !ok {
		return 1
	}
	return state.report(Progress{
		Stage:        Stage(p.stage),
		Bytes:        uint64(p.bytes),
		TotalBytes:   uint64(p.total_bytes),
		Entries:      uint64(p.entries),
		TotalEntries: uint64(p.total_entries),
	})
}
