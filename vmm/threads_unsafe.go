package vmm

import "unsafe"

// unsafePointer is the address of b's first byte, for prctl(PR_SET_NAME);
// b is kept alive by the caller across the call.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
