//go:build linux && amd64

package seccomp

import "unsafe"

// futexWord is the futex the futex scenarios operate on. It is a package
// variable, so its address never changes and may be passed as a uintptr.
var futexWord uint32

func futexWordAddr() uintptr { return uintptr(unsafe.Pointer(&futexWord)) }
