//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Where the kernel says which hierarchies exist and where a task is.
// Variables only so that nothing else spells these paths.
var (
	mountinfoPath = "/proc/self/mountinfo"
	selfTaskDir   = "/proc/self/task"
)

// removeTimeout bounds how long Remove retries a directory the kernel
// still calls busy (EBUSY: a task that has exited is still being torn
// down, or a process is still in the group).
const removeTimeout = 2 * time.Second

// hostLayout reads which hierarchy serves which controller on this host.
func hostLayout() (layout, error) {
	mi, err := readFile(mountinfoPath)
	if err != nil {
		return layout{}, err
	}
	return buildLayout(parseMountinfo(mi), func(point string) (string, error) {
		return readFile(filepath.Join(point, "cgroup.controllers"))
	})
}

// newGroup lays a group of that name out over l (nothing is touched).
func newGroup(name string, l layout) *Group {
	g := &Group{name: name, ctl: map[string]*groupDir{}}
	g.dirs = make([]groupDir, 0, len(l.hiers))
	for _, h := range l.hiers {
		g.dirs = append(g.dirs, groupDir{h: h, dir: filepath.Join(h.point, filepath.FromSlash(name))})
	}
	for i := range g.dirs {
		for _, c := range g.dirs[i].h.controllers {
			g.ctl[c] = &g.dirs[i]
		}
	}
	g.derive()
	return g
}

// derive sets cpu, acct and vcpuDirs from ctl.
func (g *Group) derive() {
	g.cpu = g.ctl["cpu"]
	switch {
	case g.cpu != nil && g.cpu.h.version == 2:
		g.acct = g.cpu
	default:
		g.acct = g.ctl["cpuacct"] // v1; nil when not mounted
	}
	for _, c := range []string{"cpu", "cpuacct"} {
		if d := g.ctl[c]; d != nil && !slices.Contains(g.vcpuDirs, d) {
			g.vcpuDirs = append(g.vcpuDirs, d)
		}
	}
}

// New creates the group name (e.g. "govmm/<vmid>", relative to each
// hierarchy's mount point) in every hierarchy that carries cpu, cpuacct,
// memory or pids, and applies r. Missing parents are created and left in
// place; on cgroup v2 the controllers are enabled in each ancestor's
// cgroup.subtree_control on the way down. It refuses (ErrExists) a name
// that exists in any hierarchy, without touching it. The cpu controller
// must be available, and memory or pids if r limits them (ErrUnavailable).
// On error nothing it created is left behind except the parents.
func New(name string, r Resources) (*Group, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	r, err := r.normalize()
	if err != nil {
		return nil, err
	}
	l, err := hostLayout()
	if err != nil {
		return nil, err
	}
	need := []string{"cpu"}
	if r.MemoryMax > 0 {
		need = append(need, "memory")
	}
	if r.PidsMax > 0 {
		need = append(need, "pids")
	}
	for _, c := range need {
		if l.ctl[c] == nil {
			return nil, fmt.Errorf("%w: %s is on no mounted cgroup hierarchy (mountinfo lists no v1 mount of it, and no cgroup2 root offers it in cgroup.controllers)", ErrUnavailable, c)
		}
	}
	g := newGroup(name, l)
	for _, d := range g.dirs {
		if _, err := os.Lstat(d.dir); err == nil {
			return nil, fmt.Errorf("%w: %s (another VM's, or left by a VMM that died: remove it with rmdir once it has no processes)", ErrExists, d.dir)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	var created []string
	undo := func(err error) (*Group, error) {
		for i := len(created) - 1; i >= 0; i-- {
			_ = unix.Rmdir(created[i])
		}
		return nil, err
	}
	for _, d := range g.dirs {
		if err := makeGroupDir(d); err != nil {
			return undo(err)
		}
		created = append(created, d.dir)
	}
	if err := g.apply(r); err != nil {
		return undo(err)
	}
	return g, nil
}

// makeGroupDir creates d's parents and d itself, enabling the hierarchy's
// controllers for children on the way on v2.
func makeGroupDir(d groupDir) error {
	parent := filepath.Dir(d.dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("cgroup: creating the parent %w", err)
	}
	if d.h.version == 2 {
		rel, err := filepath.Rel(d.h.point, parent)
		if err != nil {
			return fmt.Errorf("cgroup: %s is not below %s: %w", parent, d.h.point, err)
		}
		a := d.h.point
		if err := enableSubtree(a, d.h.controllers); err != nil {
			return err
		}
		if rel != "." {
			for _, comp := range strings.Split(rel, string(filepath.Separator)) {
				a = filepath.Join(a, comp)
				if err := enableSubtree(a, d.h.controllers); err != nil {
					return err
				}
			}
		}
	}
	if err := os.Mkdir(d.dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s (created by someone else just now)", ErrExists, d.dir)
		}
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

// enableSubtree makes sure dir's cgroup.subtree_control has every one of
// ctls (v2), writing only the missing ones.
func enableSubtree(dir string, ctls []string) error {
	cur, err := readFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(cur)
	var add []string
	for _, c := range ctls {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	err = writeFile(dir, "cgroup.subtree_control", strings.Join(add, " "))
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w (cgroup v2 lets only a cgroup without processes of its own give controllers to its children)", err)
	}
	return err
}

// apply writes r's limits into the group's files.
func (g *Group) apply(r Resources) error {
	cpuMax := r.CPUQuota > 0 || r.CPUPeriod != DefaultCPUPeriod
	if d := g.cpu; d != nil {
		if d.h.version == 2 {
			if err := writeFile(d.dir, "cpu.weight", strconv.FormatUint(r.CPUWeight, 10)); err != nil {
				return err
			}
			if cpuMax {
				q := "max"
				if r.CPUQuota > 0 {
					q = strconv.FormatInt(r.CPUQuota.Microseconds(), 10)
				}
				if err := writeFile(d.dir, "cpu.max", q+" "+strconv.FormatInt(r.CPUPeriod.Microseconds(), 10)); err != nil {
					return err
				}
			}
		} else {
			if err := writeFile(d.dir, "cpu.shares", strconv.FormatUint(WeightToShares(r.CPUWeight), 10)); err != nil {
				return err
			}
			if cpuMax {
				// Period first: a new group's quota is -1, so any period is
				// accepted; then the quota against it.
				if err := writeFile(d.dir, "cpu.cfs_period_us", strconv.FormatInt(r.CPUPeriod.Microseconds(), 10)); err != nil {
					return err
				}
				if r.CPUQuota > 0 {
					if err := writeFile(d.dir, "cpu.cfs_quota_us", strconv.FormatInt(r.CPUQuota.Microseconds(), 10)); err != nil {
						return err
					}
				}
			}
		}
	}
	if d := g.ctl["memory"]; d != nil {
		mem := strconv.FormatInt(r.MemoryMax, 10)
		if d.h.version == 2 {
			if r.MemoryMax > 0 {
				if err := writeFile(d.dir, "memory.max", mem); err != nil {
					return err
				}
			}
			// Guest RAM must not reach swap (guest secrets on disk).
			if exists(filepath.Join(d.dir, "memory.swap.max")) {
				if err := writeFile(d.dir, "memory.swap.max", "0"); err != nil {
					return err
				}
			}
		} else if r.MemoryMax > 0 {
			// limit_in_bytes first: memsw may never be below it.
			if err := writeFile(d.dir, "memory.limit_in_bytes", mem); err != nil {
				return err
			}
			if exists(filepath.Join(d.dir, "memory.memsw.limit_in_bytes")) {
				if err := writeFile(d.dir, "memory.memsw.limit_in_bytes", mem); err != nil {
					return err
				}
			}
		}
	}
	if d := g.ctl["pids"]; d != nil && r.PidsMax > 0 {
		if err := writeFile(d.dir, "pids.max", strconv.FormatInt(r.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

// Open returns the existing group name, in whichever hierarchies it exists
// (for tests and observers: it creates nothing and applies no limits).
// It fails with ErrNotExist when it exists in none.
func Open(name string) (*Group, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	l, err := hostLayout()
	if err != nil {
		return nil, err
	}
	all := newGroup(name, l)
	g := &Group{name: name, ctl: map[string]*groupDir{}}
	for _, d := range all.dirs {
		if fi, err := os.Lstat(d.dir); err == nil && fi.IsDir() {
			g.dirs = append(g.dirs, d)
		}
	}
	if len(g.dirs) == 0 {
		var where []string
		for _, d := range all.dirs {
			where = append(where, d.dir)
		}
		return nil, fmt.Errorf("%w: %q (looked for %s)", ErrNotExist, name, strings.Join(where, ", "))
	}
	for i := range g.dirs {
		for _, c := range g.dirs[i].h.controllers {
			g.ctl[c] = &g.dirs[i]
		}
	}
	g.derive()
	return g, nil
}

// AddProcess moves every thread of process pid into the group, in every
// hierarchy (cgroup.procs). Call it before AddVCPUThreads: it would move
// the vCPU threads back out of the vcpu child. When pid is this process,
// the cgroups it leaves are remembered and Remove moves it back there.
// On error the process may be in the group in some hierarchies only.
func (g *Group) AddProcess(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("%w: pid %d", ErrInvalidPID, pid)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed {
		return fmt.Errorf("%w: %s: AddProcess(%d)", ErrRemoved, g.name, pid)
	}
	if pid == os.Getpid() && g.origin == nil {
		origin, err := g.selfOrigin()
		if err != nil {
			return err
		}
		g.origin = origin
	}
	for _, d := range g.dirs {
		if err := writeFile(d.dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("%w (no process %d)", err, pid)
			}
			return err
		}
	}
	return nil
}

// selfOrigin records, per hierarchy, the directory of this process's
// cgroup when it is outside the group.
func (g *Group) selfOrigin() (map[*hierarchy]string, error) {
	text, err := readFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	lines := parseProcCgroup(text)
	origin := map[*hierarchy]string{}
	for _, d := range g.dirs {
		cg, ok := cgroupOf(lines, d.h)
		if !ok {
			continue
		}
		if dir, ok := d.h.fsPath(cg); ok && !within(dir, d.dir) {
			origin[d.h] = dir
		}
	}
	return origin, nil
}

// AddVCPUThreads moves the threads tids (of a process already added with
// AddProcess) into the child group "vcpu", created on first use, so that
// guest time is accounted (and weighted) apart from the device model's
// threads. On v2 the child is a threaded cgroup (cgroup.type "threaded",
// +cpu in the group's cgroup.subtree_control, tids written to
// cgroup.threads); on v1 it is a child directory in the cpu and cpuacct
// hierarchies, tids written to its tasks file. Memory and pids stay
// accounted at the group. Threads created later by a thread in the child
// start in the child.
func (g *Group) AddVCPUThreads(tids []int) error {
	for _, t := range tids {
		if t <= 0 {
			return fmt.Errorf("%w: tid %d", ErrInvalidPID, t)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed {
		return fmt.Errorf("%w: %s: AddVCPUThreads", ErrRemoved, g.name)
	}
	if len(g.vcpuDirs) == 0 {
		return fmt.Errorf("%w: group %s has neither a cpu nor a cpuacct directory", ErrUnavailable, g.name)
	}
	if !g.vcpuReady {
		for _, d := range g.vcpuDirs {
			if err := makeVCPUChild(d); err != nil {
				return err
			}
		}
		g.vcpuReady = true
	}
	for _, d := range g.vcpuDirs {
		child, file := filepath.Join(d.dir, VCPUChild), "tasks"
		if d.h.version == 2 {
			file = "cgroup.threads"
		}
		for _, t := range tids {
			if err := writeFile(child, file, strconv.Itoa(t)); err != nil {
				switch {
				case errors.Is(err, unix.ESRCH):
					return fmt.Errorf("%w (no thread %d)", err, t)
				case d.h.version == 2 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)):
					return fmt.Errorf("%w (on cgroup v2 a thread can enter the threaded child only when its process is in the group: call AddProcess first)", err)
				}
				return err
			}
		}
	}
	return nil
}

// makeVCPUChild creates (or finds) the vcpu child of d and, on v2, makes
// it a threaded cgroup with the cpu controller.
func makeVCPUChild(d *groupDir) error {
	child := filepath.Join(d.dir, VCPUChild)
	if err := os.Mkdir(child, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cgroup: %w", err)
	}
	if d.h.version != 2 {
		return nil
	}
	typ, err := readFile(filepath.Join(child, "cgroup.type"))
	if err != nil {
		return err
	}
	switch t := strings.TrimSpace(typ); t {
	case "threaded":
	case "domain":
		if err := writeFile(child, "cgroup.type", "threaded"); err != nil {
			return fmt.Errorf("%w (the group must not give domain controllers such as memory to its children)", err)
		}
	default:
		return fmt.Errorf("cgroup: %s/cgroup.type is %q, want domain or threaded", child, t)
	}
	// cpu is a threaded controller: enabling it for the threaded child is
	// allowed although the group has processes of its own.
	if slices.Contains(d.h.controllers, "cpu") {
		return enableSubtree(d.dir, []string{"cpu"})
	}
	return nil
}

// CPUUsage returns the CPU time used by the group (every thread, the vcpu
// child's included: the counters are hierarchical) and by the vcpu child
// alone (0 before AddVCPUThreads). It reads cpu.stat usage_usec on v2 and
// cpuacct.usage on v1. Time spent in the kernel on a thread's behalf (KVM
// emulation included) counts.
func (g *Group) CPUUsage() (total, vcpu time.Duration, err error) {
	g.mu.Lock()
	removed := g.removed
	g.mu.Unlock()
	if removed {
		return 0, 0, fmt.Errorf("%w: %s: CPUUsage", ErrRemoved, g.name)
	}
	if g.acct == nil {
		return 0, 0, fmt.Errorf("%w: group %s has no CPU accounting (cpu on v2, or cpuacct on v1)", ErrUnavailable, g.name)
	}
	total, err = usage(g.acct)
	if err != nil {
		return 0, 0, err
	}
	vcpu, err = usage(&groupDir{h: g.acct.h, dir: filepath.Join(g.acct.dir, VCPUChild)})
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Lstat(filepath.Join(g.acct.dir, VCPUChild)); errors.Is(serr, os.ErrNotExist) {
			return total, 0, nil
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return total, vcpu, nil
}

// usage reads one directory's CPU usage counter.
func usage(d *groupDir) (time.Duration, error) {
	if d.h.version == 2 {
		p := filepath.Join(d.dir, "cpu.stat")
		text, err := readFile(p)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(text, "\n") {
			k, v, ok := strings.Cut(line, " ")
			if ok && k == "usage_usec" {
				us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || us < 0 {
					return 0, fmt.Errorf("cgroup: %s: bad usage_usec %q", p, v)
				}
				return time.Duration(us) * time.Microsecond, nil
			}
		}
		return 0, fmt.Errorf("cgroup: %s has no usage_usec line", p)
	}
	p := filepath.Join(d.dir, "cpuacct.usage")
	text, err := readFile(p)
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("cgroup: %s: bad value %q", p, strings.TrimSpace(text))
	}
	return time.Duration(ns), nil
}

// Remove removes the group in every hierarchy: child directories first
// (the vcpu child and anything else below), then the group. Call it once
// the VM's processes have ended; if this process is still in the group it
// is first moved back to the cgroups AddProcess took it from (or to the
// hierarchy root). An rmdir the kernel refuses with EBUSY (a task still
// being torn down) is retried for up to 2 s, then reported with ErrBusy.
// Directories already gone are fine, so Remove is idempotent; after a
// success every later call returns nil. The parent directories stay.
func (g *Group) Remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed {
		return nil
	}
	if err := g.leave(); err != nil {
		return err
	}
	var errs []error
	deadline := time.Now().Add(removeTimeout) // shared by every hierarchy
	for i := len(g.dirs) - 1; i >= 0; i-- {
		if err := removeTree(g.dirs[i].dir, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	g.removed = true
	return nil
}

// leave moves this process out of the group, in each hierarchy where any
// of its threads is inside it.
func (g *Group) leave() error {
	tasks, err := os.ReadDir(selfTaskDir)
	if err != nil {
		return fmt.Errorf("cgroup: listing this process's threads: %w", err)
	}
	var per [][]procCgroup
	for _, t := range tasks {
		text, err := readFile(filepath.Join(selfTaskDir, t.Name(), "cgroup"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return err
		}
		per = append(per, parseProcCgroup(text))
	}
	self := strconv.Itoa(os.Getpid())
	for _, d := range g.dirs {
		inside := false
		for _, lines := range per {
			if cg, ok := cgroupOf(lines, d.h); ok {
				if dir, ok := d.h.fsPath(cg); ok && within(dir, d.dir) {
					inside = true
					break
				}
			}
		}
		if !inside {
			continue
		}
		dest := d.h.point
		if o := g.origin[d.h]; o != "" {
			dest = o
		}
		err := writeFile(dest, "cgroup.procs", self)
		if err != nil && dest != d.h.point {
			err = writeFile(d.h.point, "cgroup.procs", self)
		}
		if err != nil {
			return fmt.Errorf("cgroup: moving this process out of %s before removing it: %w", d.dir, err)
		}
	}
	return nil
}

// removeTree removes dir and every cgroup below it, deepest first,
// retrying EBUSY until deadline.
func removeTree(dir string, deadline time.Time) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	return rmdirRetry(dir, deadline)
}

func rmdirRetry(dir string, deadline time.Time) error {
	delay := time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("cgroup: rmdir %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: rmdir %s: %w after retrying for %v (tasks still in it: %s)", ErrBusy, dir, err, removeTimeout, tasksIn(dir))
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// tasksIn lists the tasks of a cgroup directory, for error messages.
func tasksIn(dir string) string {
	for _, f := range []string{"cgroup.threads", "tasks", "cgroup.procs"} {
		if text, err := readFile(filepath.Join(dir, f)); err == nil {
			if s := strings.Join(strings.Fields(text), " "); s != "" {
				return s
			}
			return "none listed"
		}
	}
	return "unknown"
}

// within reports whether dir is base or below it.
func within(dir, base string) bool {
	return dir == base || strings.HasPrefix(dir, base+"/")
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// maxFile bounds what is read from a cgroup or proc file.
const maxFile = 1 << 20

// readFile reads a small kernel file; the error names it.
func readFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile))
	if err != nil {
		return "", fmt.Errorf("cgroup: reading %s: %w", p, err)
	}
	return string(b), nil
}

// writeFile writes val to dir/file in one write(2), as cgroupfs wants; the
// error names the file and the value. O_NOFOLLOW: a cgroup control file
// is never a symlink.
func writeFile(dir, file, val string) error {
	p := filepath.Join(dir, file)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("cgroup: opening %s to write %q: %w", p, val, err)
	}
	_, werr := f.Write([]byte(val))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		// The kernel's answer is the errno; the *PathError around it would
		// only repeat the path.
		var pe *os.PathError
		if errors.As(werr, &pe) {
			werr = pe.Err
		}
		return fmt.Errorf("cgroup: writing %q to %s: %w", val, p, werr)
	}
	return nil
}
