// Command deltaapply-update brings a file (or a tree) to the newest release of a
// publish directory through libdeltaapply_ffi, linked statically with cgo.
//
//	deltaapply-update KEY_FILE TARGET SOURCE...
//
// KEY_FILE is the publisher's public key file, TARGET the installed file or tree, each
// SOURCE a mirror (a directory, a file:// or http(s):// URL). Prints the result's JSON
// on stdout and progress on stderr; exits with the library's code.
//
// Build: CGO_LDFLAGS=-L<directory of libdeltaapply_ffi.a> go build
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -l:libdeltaapply_ffi.a -lpthread -ldl -lm -lrt
#include <stdlib.h>
#include "deltaapply.h"

extern int goProgress(void *user, int phase, uint64_t done, uint64_t total);
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

var lastPhase C.int

//export goProgress
func goProgress(user unsafe.Pointer, phase C.int, done C.uint64_t, total C.uint64_t) C.int {
	if phase != lastPhase {
		lastPhase = phase
		fmt.Fprintf(os.Stderr, "update: phase %d (%d of %d)\n", int(phase), uint64(done), uint64(total))
	}
	return 0
}

// takeString copies a string the library handed out and frees it.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.deltaapply_string_free(s)
	return C.GoString(s)
}

// failure reports a failed call; returns its code.
func failure(what string, code C.int, message *C.char) int {
	fmt.Fprintf(os.Stderr, "update: %s: %s (%d): %s\n", what,
		C.GoString(C.deltaapply_code_name(code)), int(code), takeString(message))
	return int(code)
}

func run() int {
	if len(os.Args) < 4 {
		fmt.Fprintf(os.Stderr, "usage: %s KEY_FILE TARGET SOURCE...\n", os.Args[0])
		return int(C.DELTAAPPLY_E_USAGE)
	}
	keyFile := C.CString(os.Args[1])
	defer C.free(unsafe.Pointer(keyFile))
	target := C.CString(os.Args[2])
	defer C.free(unsafe.Pointer(target))
	sources := C.CString(strings.Join(os.Args[3:], "\n"))
	defer C.free(unsafe.Pointer(sources))

	fmt.Fprintf(os.Stderr, "update: libdeltaapply %s\n", C.GoString(C.deltaapply_version()))
	var message *C.char
	var handle C.deltaapply_handle
	if code := C.deltaapply_open(&handle, &message); code != C.DELTAAPPLY_OK {
		return failure("open", code, message)
	}
	defer C.deltaapply_close(handle, nil)
	if code := C.deltaapply_add_trusted_key_file(handle, keyFile, &message); code != C.DELTAAPPLY_OK {
		return failure("key", code, message)
	}
	if code := C.deltaapply_set_progress(handle, C.deltaapply_progress_fn(C.goProgress), nil, &message); code != C.DELTAAPPLY_OK {
		return failure("progress", code, message)
	}
	var result *C.char
	if code := C.deltaapply_check(handle, sources, target, &result, &message); code != C.DELTAAPPLY_OK {
		return failure("check", code, message)
	}
	fmt.Fprintf(os.Stderr, "update: check: %s\n", takeString(result))
	if code := C.deltaapply_update(handle, sources, target, &result, &message); code != C.DELTAAPPLY_OK {
		return failure("update", code, message)
	}
	fmt.Println(takeString(result))
	return 0
}

func main() {
	os.Exit(run())
}
