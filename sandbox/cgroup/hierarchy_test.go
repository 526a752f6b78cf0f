package cgroup

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The mountinfo of the development host: a hybrid hierarchy.
const hybridMountinfo = `22 1 0:21 / / rw,relatime - overlay overlay rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// A systemd host in legacy-hybrid mode: cpu and cpuacct co-mounted,
// optional fields before the separator.
const comountMountinfo = `25 30 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
32 25 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid shared:17 - cgroup cgroup rw,pids
`

// A pure v2 host (a second, bind mount of it must not matter).
const v2Mountinfo = `26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
90 80 0:23 /system.slice /mnt/cg\040bind rw - cgroup2 cgroup2 rw
`

func layoutOf(t *testing.T, mi string, v2 map[string]string) layout {
	t.Helper()
	l, err := buildLayout(parseMountinfo(mi), func(p string) (string, error) {
		s, ok := v2[p]
		if !ok {
			return "", fmt.Errorf("no %s/cgroup.controllers", p)
		}
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func describe(l layout) string {
	var b []string
	for _, h := range l.hiers {
		b = append(b, fmt.Sprintf("v%d %s [%s]", h.version, h.point, strings.Join(h.controllers, " ")))
	}
	return strings.Join(b, "; ")
}

func TestBuildLayout(t *testing.T) {
	for _, tc := range []struct {
		name, mi string
		v2       map[string]string
		want     string
	}{
		{"hybrid, empty v2", hybridMountinfo, map[string]string{"/sys/fs/cgroup/unified": ""},
			"v1 /sys/fs/cgroup/cpu [cpu]; v1 /sys/fs/cgroup/cpuacct [cpuacct]; v1 /sys/fs/cgroup/memory [memory]; v1 /sys/fs/cgroup/pids [pids]"},
		{"co-mounted cpu,cpuacct", comountMountinfo, map[string]string{"/sys/fs/cgroup/unified": "\n"},
			"v1 /sys/fs/cgroup/cpu,cpuacct [cpu cpuacct]; v1 /sys/fs/cgroup/memory [memory]; v1 /sys/fs/cgroup/pids [pids]"},
		{"pure v2", v2Mountinfo, map[string]string{"/sys/fs/cgroup": "cpuset cpu io memory hugetlb pids rdma misc\n"},
			"v2 /sys/fs/cgroup [cpu memory pids]"},
		{"v2 without pids", v2Mountinfo, map[string]string{"/sys/fs/cgroup": "cpu memory\n"},
			"v2 /sys/fs/cgroup [cpu memory]"},
		// A hybrid host where memory moved to v2 (cgroup_no_v1=memory):
		// each controller on its own version.
		{"mixed", strings.Replace(hybridMountinfo, "rw,memory", "rw,devices-not-memory", 1),
			map[string]string{"/sys/fs/cgroup/unified": "memory"},
			"v1 /sys/fs/cgroup/cpu [cpu]; v1 /sys/fs/cgroup/cpuacct [cpuacct]; v2 /sys/fs/cgroup/unified [memory]; v1 /sys/fs/cgroup/pids [pids]"},
		// cpu on v2 makes cpuacct (v1) redundant: cpu.stat accounts.
		{"cpu on v2, cpuacct on v1", hybridMountinfo,
			map[string]string{"/sys/fs/cgroup/unified": "cpu"},
			"v2 /sys/fs/cgroup/unified [cpu]; v1 /sys/fs/cgroup/memory [memory]; v1 /sys/fs/cgroup/pids [pids]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(layoutOf(t, tc.mi, tc.v2)); got != tc.want {
				t.Errorf("layout:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBuildLayoutErrors(t *testing.T) {
	_, err := buildLayout(parseMountinfo("22 1 0:21 / / rw - ext4 /dev/sda rw\n"), nil)
	if !errors.Is(err, ErrNoCgroupfs) {
		t.Errorf("no cgroup mounts: %v, want ErrNoCgroupfs", err)
	}
	_, err = buildLayout(parseMountinfo(v2Mountinfo), func(p string) (string, error) {
		return "", errors.New("EACCES")
	})
	if err == nil || !strings.Contains(err.Error(), "/sys/fs/cgroup") {
		t.Errorf("unreadable cgroup.controllers: %v", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	ms := parseMountinfo(v2Mountinfo + "garbage\n1 2 3 - cgroup2\n")
	if len(ms) != 2 {
		t.Fatalf("got %d mounts: %+v", len(ms), ms)
	}
	if ms[1].point != "/mnt/cg bind" || ms[1].root != "/system.slice" || ms[1].fstype != "cgroup2" {
		t.Errorf("escaped mount: %+v", ms[1])
	}
	if !slices.Contains(ms[0].opts, "nsdelegate") {
		t.Errorf("super options: %q", ms[0].opts)
	}
	for in, want := range map[string]string{`a\040b`: "a b", `a\134b`: `a\b`, `tail\04`: `tail\04`, `\0`: `\0`, `x\011`: "x\t", `\999`: `\999`} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProcCgroup(t *testing.T) {
	text := "9:name=systemd:/\n4:memory:/process_api/ddb9\n2:cpu,cpuacct:/govmm/vm1/vcpu\n0::/user.slice\n"
	lines := parseProcCgroup(text)
	cpu := &hierarchy{version: 1, point: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: []string{"cpu", "cpuacct"}}
	mem := &hierarchy{version: 1, point: "/sys/fs/cgroup/memory", root: "/", controllers: []string{"memory"}}
	v2 := &hierarchy{version: 2, point: "/sys/fs/cgroup/unified", root: "/"}
	pids := &hierarchy{version: 1, point: "/sys/fs/cgroup/pids", root: "/", controllers: []string{"pids"}}
	for _, tc := range []struct {
		h    *hierarchy
		cg   string
		ok   bool
		want string
	}{
		{cpu, "/govmm/vm1/vcpu", true, "/sys/fs/cgroup/cpu,cpuacct/govmm/vm1/vcpu"},
		{mem, "/process_api/ddb9", true, "/sys/fs/cgroup/memory/process_api/ddb9"},
		{v2, "/user.slice", true, "/sys/fs/cgroup/unified/user.slice"},
		{pids, "", false, ""},
	} {
		cg, ok := cgroupOf(lines, tc.h)
		if ok != tc.ok || cg != tc.cg {
			t.Errorf("cgroupOf(%s) = %q, %v; want %q, %v", tc.h, cg, ok, tc.cg, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if dir, ok := tc.h.fsPath(cg); !ok || dir != tc.want {
			t.Errorf("fsPath(%q) = %q, %v; want %q", cg, dir, ok, tc.want)
		}
	}
	// A mount of a subtree shows only what is below its root.
	sub := &hierarchy{version: 2, point: "/mnt/cg", root: "/system.slice"}
	for cg, want := range map[string]string{"/system.slice": "/mnt/cg", "/system.slice/a/b": "/mnt/cg/a/b", "/system.slicex": "", "/user.slice": ""} {
		dir, ok := sub.fsPath(cg)
		if ok != (want != "") || dir != want {
			t.Errorf("subtree fsPath(%q) = %q, %v; want %q", cg, dir, ok, want)
		}
	}
}
