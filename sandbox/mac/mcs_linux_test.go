package mac

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The cross-process tests re-exec this test binary as a second "VMM" that
// holds a reservation until its stdin closes or it is killed.
const helperEnv = "GOVMM_MAC_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "hold" {
		os.Exit(holdReservation())
	}
	if os.Getenv(helperEnv) == "landlock" {
		os.Exit(landlockChild())
	}
	if os.Getenv(helperEnv) == "landlock-exec" {
		os.Exit(landlockExecChild())
	}
	if os.Getenv(helperEnv) == "landlock-all" {
		os.Exit(landlockAllThreadsChild())
	}
	os.Exit(m.Run())
}

func holdReservation() int {
	n, _ := strconv.Atoi(os.Getenv("MCS_CATEGORIES"))
	al := &Allocator{Dir: os.Getenv("MCS_DIR"), Categories: n}
	r, err := al.Allocate("helper")
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println(r.Level)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // hold until told or killed
	if err := r.Release(); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	return 0
}

// startHolder runs a helper process that reserves a pair in dir and
// returns it with the level it holds.
func startHolder(t *testing.T, dir string, categories int) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=hold", "MCS_DIR="+dir, "MCS_CATEGORIES="+strconv.Itoa(categories))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "ERR") {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestAllocateFormatAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mcs") // Allocate must create it
	al := &Allocator{Dir: dir}
	r, err := al.Allocate("vm-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateLevel(r.Level); err != nil || r.Level != FormatLevel(r.A, r.B) || r.Level == "s0" {
		t.Fatalf("level %q (A=%d B=%d): %v", r.Level, r.A, r.B, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, pairFile(r.A, r.B)))
	if err != nil || string(b) != "vm-1\n" {
		t.Fatalf("reservation file: %q, %v", b, err)
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after Release: %v", ents)
	}
}

func TestAllocateRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		categories int
		vmID       string
		want       error
	}{
		{"one category", 1, "vm", nil},
		{"too many categories", MaxCategories + 1, "vm", nil},
		{"negative", -3, "vm", nil},
		{"empty id", 4, "", ErrInvalidName},
		{"slash in id", 4, "../x", ErrInvalidName},
		{"newline in id", 4, "a\nb", ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Allocator{Dir: dir, Categories: tc.categories}).Allocate(tc.vmID)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Allocate = %v, want error %v", err, tc.want)
			}
		})
	}
}

// Many goroutines allocate from a pool barely larger than their number,
// so random draws collide often and the scan path is exercised too.
func TestAllocateConcurrentUnique(t *testing.T) {
	const workers = 60
	al := &Allocator{Dir: t.TempDir(), Categories: 12} // 66 pairs
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		held = map[string]bool{}
		all  []*Reservation
	)
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := al.Allocate(fmt.Sprintf("vm-%d", i))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if held[r.Level] {
				errs <- fmt.Errorf("level %s handed out twice", r.Level)
			}
			held[r.Level] = true
			all = append(all, r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(held) != workers {
		t.Fatalf("%d distinct levels, want %d", len(held), workers)
	}
	for _, r := range all {
		if err := r.Release(); err != nil {
			t.Error(err)
		}
	}
}

func TestExhaustion(t *testing.T) {
	al := &Allocator{Dir: t.TempDir(), Categories: 4} // C(4,2) = 6 pairs
	var rs []*Reservation
	for i := range 6 {
		r, err := al.Allocate("vm")
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		rs = append(rs, r)
	}
	_, err := al.Allocate("vm")
	if !errors.Is(err, ErrCategoriesExhausted) {
		t.Fatalf("7th allocation: %v, want ErrCategoriesExhausted", err)
	}
	if !strings.Contains(err.Error(), "6 pairs of 4 categories") {
		t.Errorf("error %q does not say how many pairs exist", err)
	}
	// Release then reuse: the freed pair, and only it, is available again.
	freed := rs[3].Level
	if err := rs[3].Release(); err != nil {
		t.Fatal(err)
	}
	r, err := al.Allocate("vm")
	if err != nil || r.Level != freed {
		t.Fatalf("after release: %v, %v; want %s", r, err, freed)
	}
	if _, err := al.Allocate("vm"); !errors.Is(err, ErrCategoriesExhausted) {
		t.Fatalf("after reuse: %v, want ErrCategoriesExhausted", err)
	}
}

// A reservation file nobody holds a lock on is what a crashed VMM leaves.
func TestStaleFileReclaimed(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, pairFile(0, 1))
	if err := os.WriteFile(stale, []byte("crashed-vm\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := (&Allocator{Dir: dir, Categories: 2}).Allocate("vm-new")
	if err != nil {
		t.Fatalf("stale reservation not reclaimed: %v", err)
	}
	defer r.Release()
	if r.Level != "s0:c0,c1" {
		t.Fatalf("level %s, want s0:c0,c1", r.Level)
	}
	if b, _ := os.ReadFile(stale); string(b) != "vm-new\n" {
		t.Fatalf("reclaimed file says %q", b)
	}
}

// Another process's live reservation is respected; once that process is
// killed (no Release, as in a crash) its pair is reclaimed.
func TestCrossProcessReservation(t *testing.T) {
	dir := t.TempDir()
	cmd, level := startHolder(t, dir, 2) // 2 categories: a single pair
	if level != "s0:c0,c1" {
		t.Fatalf("helper holds %q", level)
	}
	al := &Allocator{Dir: dir, Categories: 2}
	if r, err := al.Allocate("vm"); !errors.Is(err, ErrCategoriesExhausted) {
		t.Fatalf("Allocate while another process holds the only pair: %v, %v", r, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, pairFile(0, 1))); err != nil {
		t.Fatalf("killed helper's file should remain (stale): %v", err)
	}
	r, err := al.Allocate("vm")
	if err != nil || r.Level != level {
		t.Fatalf("after helper crash: %v, %v", r, err)
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
}

// Cross-process uniqueness with several pairs: the helper's pair is never
// handed out in this process while the helper lives.
func TestCrossProcessUnique(t *testing.T) {
	dir := t.TempDir()
	_, level := startHolder(t, dir, 5) // 10 pairs
	al := &Allocator{Dir: dir, Categories: 5}
	for i := range 9 {
		r, err := al.Allocate("vm")
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if r.Level == level {
			t.Fatalf("got the helper's level %s", level)
		}
		defer r.Release()
	}
	if _, err := al.Allocate("vm"); !errors.Is(err, ErrCategoriesExhausted) {
		t.Fatalf("10th allocation: %v, want ErrCategoriesExhausted", err)
	}
}
