//go:build linux && !cgo

package mac

// landlockExecChild needs the cgo constructor; TestMain still names it.
func landlockExecChild() int { return 2 }
