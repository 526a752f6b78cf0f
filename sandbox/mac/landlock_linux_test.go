package mac

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLandlockNotAvailableIsClear(t *testing.T) {
	abi, err := LandlockABI()
	if err == nil {
		t.Skipf("Landlock ABI %d available; see TestLandlockRestrictsSubprocess", abi)
	}
	if !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("LandlockABI: %v, want ErrNotAvailable", err)
	}
	if !strings.Contains(err.Error(), "ENOSYS") && !strings.Contains(err.Error(), "EOPNOTSUPP") {
		t.Errorf("error %q does not name the errno", err)
	}
	ok, reason := LandlockAvailable()
	if ok || reason == "" || !strings.Contains(err.Error(), reason) {
		t.Errorf("LandlockAvailable = (%v, %q), inconsistent with %v", ok, reason, err)
	}
	dir := t.TempDir()
	for name, err := range map[string]error{
		"RestrictPaths":         RestrictPaths([]string{dir}, nil),
		"RestrictThreadForExec": RestrictThreadForExec(nil, []string{dir}),
	} {
		if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want ErrNotAvailable with %q", name, err, reason)
		}
	}
}

// landlockChild runs in a re-exec'd test binary, because a Landlock
// restriction cannot be lifted and must not confine the test process.
func landlockChild() int {
	ro, rw := os.Getenv("LL_RO"), os.Getenv("LL_RW")
	runtime.LockOSThread() // the check below must run on the restricted thread
	if err := RestrictThreadForExec([]string{ro}, []string{rw}); err != nil {
		fmt.Println("restrict:", err)
		return 2
	}
	check := func(what string, err error, allowed bool) bool {
		if (err == nil) != allowed {
			fmt.Printf("%s: err=%v, allowed=%v\n", what, err, allowed)
			return false
		}
		return true
	}
	_, errRead := os.ReadFile(filepath.Join(ro, "kernel"))
	errWriteRO := os.WriteFile(filepath.Join(ro, "kernel"), []byte("x"), 0o644)
	errWriteRW := os.WriteFile(filepath.Join(rw, "disk"), []byte("x"), 0o644)
	_, errOther := os.ReadFile("/etc/hostname")
	if check("read ro", errRead, true) && check("write ro", errWriteRO, false) &&
		check("write rw", errWriteRW, true) && check("read outside", errOther, false) {
		fmt.Println("OK")
		return 0
	}
	return 1
}

func TestLandlockRestrictsSubprocess(t *testing.T) {
	if ok, reason := LandlockAvailable(); !ok {
		t.Skip("Landlock not available: " + reason)
	}
	ro, rw := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "kernel"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=landlock", "LL_RO="+ro, "LL_RW="+rw)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// landlockAllThreadsChild checks that RestrictPaths confines every thread,
// not only the caller's: the reads run on freshly locked OS threads.
func landlockAllThreadsChild() int {
	if err := RestrictPaths([]string{os.Getenv("LL_RO")}, nil); err != nil {
		fmt.Println("restrict:", err)
		return 2
	}
	res := make(chan error)
	for range 8 {
		go func() {
			runtime.LockOSThread() // never unlocked: a distinct thread each
			_, err := os.ReadFile("/etc/hostname")
			res <- err
		}()
	}
	for range 8 {
		if err := <-res; err == nil {
			fmt.Println("a thread read /etc/hostname")
			return 1
		}
	}
	if _, err := os.ReadFile(filepath.Join(os.Getenv("LL_RO"), "kernel")); err != nil {
		fmt.Println("allowed read failed:", err)
		return 1
	}
	fmt.Println("OK")
	return 0
}

// RestrictPaths either confines all threads or refuses with a clear
// ErrNotAvailable (cgo binary on a kernel without TSYNC); it never
// silently confines one thread.
func TestLandlockRestrictPathsAllThreads(t *testing.T) {
	if ok, reason := LandlockAvailable(); !ok {
		t.Skip("Landlock not available: " + reason)
	}
	ro := t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "kernel"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=landlock-all", "LL_RO="+ro)
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil && strings.Contains(string(out), "OK"):
	case strings.Contains(string(out), "cannot restrict every thread"):
		t.Logf("refused as designed: %s", out)
	default:
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
