//go:build linux && amd64

package kvm

import "unsafe"

// hostAddr is the address KVM_SET_USER_MEMORY_REGION needs for a mapping.
func hostAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
