// Command goformat is the go-format aiplug plugin: a native plugin written in
// Go, built as a C shared library. It serves one task through `invoke`,
// "go-format": the input is Go source, the output the same source formatted
// as gofmt would (go/format.Source); a syntax error fails the call with the
// parser's "line:col: message" text.
//
// Build (from the repository root; no environment needed for the header,
// the #cgo directive below finds include/aiplug.h):
//
//	cd plugins/go-format && CGO_ENABLED=1 GOTOOLCHAIN=local GOPROXY=off \
//	  go build -buildmode=c-shared -o libgo_format.so .
//
// The vtable, metadata and trampolines are C (shim.c): cgo cannot call the
// host's function pointers from Go, and a file with //export may not define
// C functions in its preamble.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"go/format"
	"unsafe"
)

// goformatInvoke implements invoke for the "go-format" task. The input view is
// borrowed for the duration of the call only; out has been cleared by the C
// trampoline and receives a C-malloc'd buffer, released by the plugin's
// free_buf (C free).
//
//export goformatInvoke
func goformatInvoke(ctx *C.AiplugCallCtx, in *C.uint8_t, n C.size_t, out *C.AiplugBuf) (status C.int32_t) {
	defer func() {
		// A panic must never unwind into the host (it would abort the
		// process): report it as AIPLUG_STATUS_PANIC instead.
		if r := recover(); r != nil {
			setOut(out, []byte(fmt.Sprintf("go-format: panic: %v", r)))
			status = C.AIPLUG_STATUS_PANIC
		}
	}()

	if n > 0 && in == nil {
		setOut(out, []byte("go-format: null input with non-zero length"))
		return C.AIPLUG_STATUS_ERROR
	}
	if bool(C.goformat_host_cancelled(ctx)) {
		setOut(out, []byte("go-format: cancelled"))
		return C.AIPLUG_STATUS_CANCELLED
	}

	// Zero copy: a Go slice over the host's bytes. format.Source does not
	// keep it past the call (its result is a fresh slice).
	var src []byte
	if n > 0 {
		src = unsafe.Slice((*byte)(unsafe.Pointer(in)), int(n))
	}
	res, err := format.Source(src)
	if err != nil {
		// go/scanner errors read "line:col: message" (no file name).
		setOut(out, []byte(err.Error()))
		return C.AIPLUG_STATUS_ERROR
	}
	setOut(out, res)
	return C.AIPLUG_STATUS_OK
}

// setOut hands b to the host in a C-malloc'd buffer (empty b: no buffer).
func setOut(out *C.AiplugBuf, b []byte) {
	if out == nil {
		return
	}
	out.ptr = nil
	out.len = 0
	if len(b) == 0 {
		return
	}
	// C.CBytes copies into C.malloc'd memory (cgo aborts on allocation
	// failure rather than returning nil).
	out.ptr = (*C.uint8_t)(C.CBytes(b))
	out.len = C.size_t(len(b))
}

// A c-shared library needs a main package; main never runs.
func main() {}
