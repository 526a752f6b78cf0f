//go:build linux && cgo

package mac

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// landlockExecChild is the re-exec'd test binary: first unrestricted, it
// calls ExecRestricted; the new image (same PID) checks that every thread
// it has is restricted to exactly the files it was given.
func landlockExecChild() int {
	ro, rw := os.Getenv("LL_RO"), os.Getenv("LL_RW")
	restricted, err := RestrictedAtStart()
	if err != nil {
		fmt.Println("ctor:", err)
		return 2
	}
	if !restricted {
		fmt.Println("ERR exec:", ExecRestricted([]string{ro}, []string{rw}))
		return 2
	}
	if os.Getenv("GOVMM_LANDLOCK_RO") != "" {
		fmt.Println("the rules stayed in the environment")
		return 1
	}
	// Check on several OS threads: each must be inside the domain.
	var wg sync.WaitGroup
	bad := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if _, err := os.ReadFile(ro); err != nil {
				bad <- "read ro: " + err.Error()
			}
			if err := os.WriteFile(ro, []byte("x"), 0); err == nil {
				bad <- "write ro allowed"
			}
			if err := os.WriteFile(rw, []byte("x"), 0); err != nil {
				bad <- "write rw: " + err.Error()
			}
			if _, err := os.ReadFile("/etc/hostname"); err == nil {
				bad <- "read outside allowed"
			}
		}()
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		fmt.Println(b)
		return 1
	}
	fmt.Println("OK")
	return 0
}

// TestExecRestricted: a cgo binary re-executed through ExecRestricted is
// Landlock-confined on every thread from its first instruction, even on
// kernels without LANDLOCK_RESTRICT_SELF_TSYNC.
func TestExecRestricted(t *testing.T) {
	if ok, reason := LandlockAvailable(); !ok {
		t.Skip("Landlock not available: " + reason)
	}
	dir := t.TempDir()
	ro, rw := filepath.Join(dir, "kernel"), filepath.Join(dir, "disk")
	for _, p := range []string{ro, rw} {
		if err := os.WriteFile(p, []byte("k"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=landlock-exec", "LL_RO="+ro, "LL_RW="+rw)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestExecRestrictedRejects: bad rule paths fail before any exec.
func TestExecRestrictedRejects(t *testing.T) {
	if ok, reason := LandlockAvailable(); !ok {
		t.Skip("Landlock not available: " + reason)
	}
	for _, c := range []struct{ path, mention string }{
		{"relative/file", "not absolute"},
		{t.TempDir(), "directory"},
		{"/nonexistent/govmm-file", "no such file"},
	} {
		err := ExecRestricted([]string{c.path}, nil)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("ExecRestricted(%q) = %v, want an error mentioning %q", c.path, err, c.mention)
		}
	}
}
