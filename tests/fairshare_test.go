package tests

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/sandbox/cgroup"
)

// fairVM is one `govmm run --id ID --cpu-weight W` of the spin guest.
type fairVM struct {
	id     string
	weight int
	cmd    *exec.Cmd
	out    *syncBuffer
	errb   *syncBuffer
	group  *cgroup.Group // opened once the guest runs
}

func (v *fairVM) groupName() string { return "govmm/" + v.id }

// TestFairShare boots two spin guests pinned to one CPU, with CPU weights
// 100 and 300, and checks that their cgroups' CPU usage over 10 s splits
// 25/75 (±5 points), that the vCPU threads are in the vcpu child, and that
// govmm removes both cgroups when stopped with SIGTERM.
func TestFairShare(t *testing.T) {
	RequireKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: per-VM cgroups need root (govmm run refuses a cgroup flag without it)")
	}
	if _, err := cgroup.Open("govmm/fairshare-probe"); errors.Is(err, cgroup.ErrNoCgroupfs) {
		t.Skipf("skipping: %v", err)
	}
	bin := GovmmBin(t)
	if help, _ := exec.Command(bin, "run", "-h").CombinedOutput(); !strings.Contains(string(help), "-cpu-weight") ||
		!strings.Contains(string(help), "-id") {
		t.Fatalf("%s run -h shows no --id/--cpu-weight flags: this govmm cannot put a VM in a weighted cgroup\n%s", bin, help)
	}
	spin := Guest(t, "spin")
	cpu := pickCPU(t)

	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b[:])
	vms := []*fairVM{{id: "fs-a-" + suffix, weight: 100}, {id: "fs-b-" + suffix, weight: 300}}
	for _, v := range vms {
		startFairVM(t, v, bin, spin, cpu)
	}
	for _, v := range vms {
		waitFor(t, v.out, "spin: start", 60*time.Second)
		g, err := cgroup.Open(v.groupName())
		if err != nil {
			t.Fatalf("VM %s runs but its cgroup: %v\nstderr:\n%s", v.id, err, v.errb.String())
		}
		v.group = g
		t.Logf("VM %s (weight %d, pid %d): cgroup v%d %v", v.id, v.weight, v.cmd.Process.Pid, g.Version(), g.Paths())
	}
	for _, v := range vms {
		checkPinned(t, v, cpu)
	}

	type sample struct{ total, vcpu time.Duration }
	read := func() []sample {
		s := make([]sample, len(vms))
		for i, v := range vms {
			total, vcpu, err := v.group.CPUUsage()
			if err != nil {
				t.Fatalf("VM %s: %v", v.id, err)
			}
			s[i] = sample{total, vcpu}
		}
		return s
	}
	const window = 10 * time.Second
	s0, w0 := read(), time.Now()
	time.Sleep(window)
	s1, wall := read(), time.Since(w0)

	var sum, sumVCPU time.Duration
	d := make([]sample, len(vms))
	for i := range vms {
		d[i] = sample{s1[i].total - s0[i].total, s1[i].vcpu - s0[i].vcpu}
		sum += d[i].total
		sumVCPU += d[i].vcpu
	}
	if sum <= 0 {
		t.Fatalf("no CPU time used in %v: %+v → %+v", wall, s0, s1)
	}
	wantTotal := 0
	for _, v := range vms {
		wantTotal += v.weight
	}
	for i, v := range vms {
		share := 100 * float64(d[i].total) / float64(sum)
		vshare := math.NaN()
		if sumVCPU > 0 {
			vshare = 100 * float64(d[i].vcpu) / float64(sumVCPU)
		}
		want := 100 * float64(v.weight) / float64(wantTotal)
		t.Logf("VM %s weight %d: %v CPU of %v wall (%.1f%% of the pair; vCPU threads %v, %.1f%%), want %.0f%% ±5",
			v.id, v.weight, d[i].total.Round(time.Millisecond), wall.Round(time.Millisecond), share,
			d[i].vcpu.Round(time.Millisecond), vshare, want)
		if math.Abs(share-want) > 5 {
			t.Errorf("VM %s (weight %d) got %.1f%% of the CPU, want %.0f%% ±5", v.id, v.weight, share, want)
		}
		// The spinning happens on the vCPU thread, which must be in the
		// vcpu child: nearly all of the group's time is the child's.
		if d[i].vcpu < d[i].total*8/10 {
			t.Errorf("VM %s: vcpu child used %v of the group's %v: are the vCPU threads in %s?",
				v.id, d[i].vcpu, d[i].total, cgroup.VCPUChild)
		}
	}
	// One CPU's worth in all: proof that both really shared one CPU (and
	// that they did run: the guests spin, so they take what they get).
	if sum > wall*105/100 {
		t.Errorf("the two VMs used %v in %v of wall time: more than one CPU, so they were not pinned together", sum, wall)
	}
	if sum < wall/2 {
		t.Errorf("the two VMs used only %v in %v: the spin guests did not spin", sum, wall)
	}

	// SIGTERM: govmm stops the VM, exits 6 and removes the cgroup.
	for _, v := range vms {
		if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vms {
		code := waitExit(t, v.cmd, 30*time.Second)
		if code != 6 {
			t.Errorf("VM %s: exit code %d after SIGTERM, want 6 (stopped)\nstderr:\n%s", v.id, code, v.errb.String())
		}
		if g, err := cgroup.Open(v.groupName()); !errors.Is(err, cgroup.ErrNotExist) {
			t.Errorf("VM %s: its cgroup is still there after govmm exited (Open: %v)", v.id, err)
			if g != nil {
				for c, dir := range g.Paths() {
					t.Logf("  %s: %s", c, dir)
				}
			}
		}
	}
}

// pickCPU returns CPU 0, or the first CPU this test may run on if 0 is not
// among them.
func pickCPU(t *testing.T) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			return c
		}
	}
	t.Fatal("no CPU in this test's affinity mask")
	return -1
}

// startFairVM starts govmm through taskset, so that it and every process
// and thread it creates inherit the single-CPU affinity from the start.
// Its cleanup stops govmm if the test did not, and kills whatever is left
// in the VM's cgroup before removing it, so a failed test leaves no
// spinning guest behind.
func startFairVM(t *testing.T, v *fairVM, bin, spin string, cpu int) {
	t.Helper()
	v.cmd = exec.Command("taskset", "-c", strconv.Itoa(cpu),
		bin, "run", "--kernel", spin, "--id", v.id, "--cpu-weight", strconv.Itoa(v.weight))
	v.out, v.errb = &syncBuffer{}, &syncBuffer{}
	v.cmd.Stdout, v.cmd.Stderr = v.out, v.errb
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if v.cmd.ProcessState == nil {
			_ = v.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = v.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = v.cmd.Process.Kill()
				<-done
			}
		}
		g, err := cgroup.Open(v.groupName())
		if err != nil {
			return
		}
		for _, dir := range g.Paths() {
			for _, pid := range pidsIn(filepath.Join(dir, "cgroup.procs")) {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if err := g.Remove(); err != nil {
			t.Logf("cleanup: removing the leftover cgroup of %s: %v", v.id, err)
		}
	})
}

// checkPinned checks that govmm and every process in the VM's cgroup,
// every thread of them, may run only on cpu.
func checkPinned(t *testing.T, v *fairVM, cpu int) {
	t.Helper()
	pids := []int{v.cmd.Process.Pid}
	pids = append(pids, pidsIn(filepath.Join(v.group.Paths()["cpu"], "cgroup.procs"))...)
	threads := 0
	for _, pid := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatalf("VM %s: %v", v.id, err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				continue // the thread exited
			}
			if set.Count() != 1 || !set.IsSet(cpu) {
				t.Errorf("VM %s: thread %d of process %d may run on %d CPUs, want only CPU %d", v.id, tid, pid, set.Count(), cpu)
			}
			threads++
		}
	}
	if len(pids) < 2 {
		t.Errorf("VM %s: no process in its cgroup", v.id)
	}
	t.Logf("VM %s: %d threads of processes %v all pinned to CPU %d", v.id, threads, pids, cpu)
}

// pidsIn reads a cgroup.procs file (nothing if it cannot be read).
func pidsIn(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
