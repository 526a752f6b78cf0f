//go:build linux && !cgo

package mac

import "fmt"

// ExecRestricted needs the cgo constructor; a cgo-free binary can use
// RestrictPaths, which reaches every thread through AllThreadsSyscall.
func ExecRestricted(ro, rw []string) error {
	return fmt.Errorf("landlock: %w: restricting at exec needs a cgo build; use RestrictPaths", ErrNotAvailable)
}

// RestrictedAtStart is always false without the cgo constructor.
func RestrictedAtStart() (bool, error) { return false, nil }
