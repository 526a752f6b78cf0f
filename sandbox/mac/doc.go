// Package mac confines a govmm process with a mandatory access control
// mechanism: SELinux in the sVirt model (a per-VM MCS category pair),
// AppArmor (a generated per-VM profile) or, unprivileged, Landlock.
//
// The point of all three is the same: a guest that escapes the device model
// lands in a process that can touch only its own VM's files, even though it
// may share a uid with other VMs. Select picks the mechanism for --mac.
//
// Pure parts (label formatting, profile generation, selection logic) are
// portable so they can be tested anywhere; everything that touches the
// kernel lives in _linux.go files.
package mac

import "errors"

var (
	// ErrNotAvailable means the mechanism does not exist or is disabled on
	// this host. Errors wrapping it always say why.
	ErrNotAvailable = errors.New("not available")
	// ErrCategoriesExhausted means every MCS category pair is held by a
	// running VM, so a new VM cannot be isolated from all the others.
	ErrCategoriesExhausted = errors.New("mcs: all category pairs are in use")
	// ErrInvalidName is returned for SELinux type names, AppArmor profile
	// names and VM ids that could smuggle syntax into a label or profile.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidLevel is returned for an MLS/MCS level we did not make.
	ErrInvalidLevel = errors.New("invalid MCS level")
	// ErrInvalidPath is returned for paths that are not absolute and clean
	// or that contain characters special to AppArmor's glob syntax.
	ErrInvalidPath = errors.New("invalid path")
	// ErrUnknownMode is returned by Select for a --mac value it does not know.
	ErrUnknownMode = errors.New("unknown --mac mode")
	// ErrNoMAC is returned by Select for --mac=required when no mechanism
	// is available at all.
	ErrNoMAC = errors.New("no MAC mechanism available")
)
