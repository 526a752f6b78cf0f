//go:build linux && cgo

package jail

/*
#include "ctor_linux.h"
*/
import "C"

import (
	"fmt"
	"syscall"
)

// clearInheritable checks that the C constructor (ctor_linux.c) cleared
// the inheritable and ambient capability sets while the process was
// single-threaded; every thread the Go runtime created since copied that.
func clearInheritable() error {
	switch st := int(C.govmm_jail_ctor_state); {
	case st == 1:
		return nil
	case st == 0:
		return fmt.Errorf("the constructor did not run (marker %s not seen before the Go runtime started)", envMarker)
	default:
		return fmt.Errorf("the constructor failed: %w", syscall.Errno(-st))
	}
}

// ctorMarker is the marker name compiled into the constructor.
func ctorMarker() string { return C.GoString(C.govmm_jail_env) }
