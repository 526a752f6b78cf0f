package cgroup

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// managed lists the controllers this package uses, in the order their
// hierarchies are visited. cpuacct exists only on v1.
var managed = []string{"cpu", "cpuacct", "memory", "pids"}

// v2Managed are the managed controllers that exist on cgroup v2.
var v2Managed = []string{"cpu", "memory", "pids"}

// mount is one cgroup or cgroup2 line of /proc/self/mountinfo.
type mount struct {
	root   string   // mountinfo's root field: the cgroup shown at point
	point  string   // the mount point
	fstype string   // "cgroup" or "cgroup2"
	opts   []string // super options: v1 controllers, "name=...", flags
}

// parseMountinfo returns the cgroup and cgroup2 mounts of a mountinfo text
// (proc(5)): "id parent maj:min root point opts [optional...] - fstype
// source superopts". Malformed lines are skipped.
func parseMountinfo(text string) []mount {
	var ms []mount
	for _, line := range strings.Split(text, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 1 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		m := mount{root: unescapeOctal(f[3]), point: unescapeOctal(f[4]), fstype: g[0]}
		if len(g) >= 3 {
			m.opts = strings.Split(g[2], ",")
		}
		ms = append(ms, m)
	}
	return ms
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline,
// backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOct(s[i+1]) && isOct(s[i+2]) && isOct(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

// hierarchy is one mounted cgroup hierarchy that serves at least one
// managed controller. Immutable once built.
type hierarchy struct {
	version     int      // 1 or 2
	point       string   // mount point
	root        string   // the cgroup at the mount point ("/" normally)
	controllers []string // the managed controllers it serves, in managed order
}

func (h *hierarchy) String() string {
	return fmt.Sprintf("cgroup v%d at %s (%s)", h.version, h.point, strings.Join(h.controllers, ","))
}

// fsPath turns a cgroup path as /proc/PID/cgroup shows it into a directory
// under the mount point; ok is false when that cgroup is not visible there.
func (h *hierarchy) fsPath(cg string) (dir string, ok bool) {
	cg = path.Clean("/" + cg)
	switch {
	case h.root == "/":
	case cg == h.root:
		cg = "/"
	case strings.HasPrefix(cg, h.root+"/"):
		cg = cg[len(h.root):]
	default:
		return "", false
	}
	return path.Join(h.point, cg), true
}

// layout says which hierarchy serves each managed controller.
type layout struct {
	hiers []*hierarchy          // distinct hierarchies, in managed order of their first controller
	ctl   map[string]*hierarchy // controller → hierarchy; absent = unavailable
}

// buildLayout decides, per controller, which hierarchy serves it. The
// first cgroup2 mount is asked (v2Controllers reads <point>/cgroup.controllers)
// which controllers it has: those are on v2, v2 being preferred. The rest
// go to the first v1 mount whose options name them. cpuacct is dropped when
// cpu is on v2 (v2's cpu.stat is the accounting then).
func buildLayout(mounts []mount, v2Controllers func(point string) (string, error)) (layout, error) {
	l := layout{ctl: map[string]*hierarchy{}}
	if len(mounts) == 0 {
		return l, fmt.Errorf("%w (no cgroup or cgroup2 line in /proc/self/mountinfo)", ErrNoCgroupfs)
	}
	byPoint := map[string]*hierarchy{}
	for _, m := range mounts {
		if m.fstype != "cgroup2" {
			continue
		}
		text, err := v2Controllers(m.point)
		if err != nil {
			return l, fmt.Errorf("cgroup: reading the controllers of the cgroup2 mount %s: %w", m.point, err)
		}
		avail := strings.Fields(text)
		h := &hierarchy{version: 2, point: m.point, root: m.root}
		for _, c := range v2Managed {
			if slices.Contains(avail, c) {
				l.ctl[c] = h
			}
		}
		byPoint[m.point] = h
		break
	}
	for _, m := range mounts {
		if m.fstype != "cgroup" {
			continue
		}
		var h *hierarchy
		for _, c := range managed {
			if _, taken := l.ctl[c]; taken || !slices.Contains(m.opts, c) {
				continue
			}
			if h == nil {
				h = &hierarchy{version: 1, point: m.point, root: m.root}
				byPoint[m.point] = h
			}
			l.ctl[c] = h
		}
	}
	if h := l.ctl["cpu"]; h != nil && h.version == 2 {
		delete(l.ctl, "cpuacct")
	}
	for _, c := range managed {
		h := l.ctl[c]
		if h == nil {
			continue
		}
		h.controllers = append(h.controllers, c)
		if !slices.Contains(l.hiers, h) {
			l.hiers = append(l.hiers, h)
		}
	}
	return l, nil
}

// procCgroup is one line of /proc/PID/cgroup: "id:controllers:path".
type procCgroup struct {
	id          string
	controllers []string // empty for the v2 line ("0::/...")
	path        string
}

func parseProcCgroup(text string) []procCgroup {
	var out []procCgroup
	for _, line := range strings.Split(text, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctls, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		e := procCgroup{id: id, path: p}
		if ctls != "" {
			e.controllers = strings.Split(ctls, ",")
		}
		out = append(out, e)
	}
	return out
}

// cgroupOf returns the cgroup path that /proc/PID/cgroup lines give for h.
func cgroupOf(lines []procCgroup, h *hierarchy) (string, bool) {
	for _, e := range lines {
		if h.version == 2 && e.id == "0" && len(e.controllers) == 0 {
			return e.path, true
		}
		if h.version == 1 && len(h.controllers) > 0 && slices.Contains(e.controllers, h.controllers[0]) {
			return e.path, true
		}
	}
	return "", false
}
