package vmm

import "testing"

// The exit codes are the CLI's contract with scripts; a change must be
// deliberate, so each one is pinned here and every reason must map to a
// distinct code.
func TestExitCodesDistinctAndDocumented(t *testing.T) {
	cases := []struct {
		r    ExitReason
		code int
		name string
	}{
		{ExitReset, 0, "reset"},
		{ExitHalt, 3, "halt"},
		{ExitShutdown, 4, "shutdown"},
		{ExitCrash, 5, "crash"},
		{ExitStopped, 6, "stopped"},
		{ExitError, 1, "error"},
	}
	seen := map[int]ExitReason{CodeUsage: 0}
	for _, c := range cases {
		if got := c.r.ExitCode(); got != c.code {
			t.Errorf("%v.ExitCode() = %d, want %d", c.r, got, c.code)
		}
		if got := c.r.String(); got != c.name {
			t.Errorf("String() = %q, want %q", got, c.name)
		}
		if prev, dup := seen[c.code]; dup {
			t.Errorf("code %d used by both %v and %v", c.code, prev, c.r)
		}
		seen[c.code] = c.r
	}
}
