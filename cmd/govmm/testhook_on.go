//go:build govmm_testhooks

package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// testHook makes one thread class issue one syscall right after its
// seccomp filter went on, so tests can show from outside that a forbidden
// call kills the VMM and an allowed one does not. It exists only in
// binaries built with -tags govmm_testhooks (tests/seccomp_test.go).
type testHook struct {
	class, call string
}

// testHookOpts is the --test-syscall flag.
type testHookOpts struct {
	testSyscall string
}

func registerTestHookFlags(fs *flag.FlagSet, o *runOptions) {
	fs.StringVar(&o.testSyscall, "test-syscall", "", "test builds only: CLASS:CALL, CLASS vcpu|device|api, CALL openat|getpid")
}

func (o testHookOpts) testHook() testHook {
	class, call, _ := strings.Cut(o.testSyscall, ":")
	return testHook{class: class, call: call}
}

func (o testHookOpts) testHookArgs() []string {
	if o.testSyscall == "" {
		return nil
	}
	return []string{"--test-syscall", o.testSyscall}
}

func (h testHook) run(class string) {
	if h.class != class {
		return
	}
	switch h.call {
	case "openat":
		// Forbidden in every class: the filter must kill the process
		// here, so the line after it is never printed.
		fd, err := unix.Openat(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		fmt.Fprintf(os.Stderr, "testhook: %s openat returned %d, %v (the filter did not stop it)\n", class, fd, err)
	case "getpid":
		fmt.Fprintf(os.Stderr, "testhook: %s getpid = %d\n", class, unix.Getpid())
	}
}
