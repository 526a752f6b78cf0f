package mac

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// ProfileSpec describes what one VM's VMM process may touch.
type ProfileSpec struct {
	// Name is the profile name, e.g. "govmm-<vmid>".
	Name string
	// Kernel and Initrd are read-only; Initrd may be empty.
	Kernel, Initrd string
	// Disks are the VM's block devices or image files.
	Disks []Disk
	// Devices are device nodes opened read-write, e.g. /dev/kvm, /dev/net/tun.
	Devices []string
	// JailRoot, if set, is the per-VM root the jail pivots into. Every
	// file rule is then emitted for both the in-jail path and the same file
	// seen from the host (JailRoot + path): AppArmor mediates the path as
	// the task sees it, which depends on whether the file is opened before
	// or after pivot_root. Both names reach the same bind-mounted file.
	JailRoot string
}

// Disk is one disk image and whether the guest may write it.
type Disk struct {
	Path     string
	ReadOnly bool
}

var profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// globSpecial are the characters with meaning inside an AppArmor path,
// even a quoted one: glob operators, alternation, variables (@{...} needs
// '{'), escapes and the quote itself. A path containing any of them would
// grant more than the one file it names.
const globSpecial = "*?[]{}^\"\\"

// ValidatePath accepts absolute, clean paths without AppArmor glob syntax
// or control characters.
func ValidatePath(p string) error {
	switch {
	case p == "" || !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w %q: not absolute", ErrInvalidPath, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w %q: not clean (want %q)", ErrInvalidPath, p, path.Clean(p))
	case strings.ContainsAny(p, globSpecial):
		return fmt.Errorf("%w %q: contains one of %s, which AppArmor treats as pattern syntax", ErrInvalidPath, p, globSpecial)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: contains a control character", ErrInvalidPath, p)
		}
	}
	return nil
}

type rule struct{ path, perms, why string }

// GenerateProfile renders the AppArmor profile for one VM. AppArmor denies
// by default whatever a profile does not allow (files, capabilities,
// network, mounts), so the profile lists only what the VMM needs. It
// deliberately has no explicit "deny" file rules: deny beats allow in
// AppArmor, so a broad deny would also revoke the VM's own files. The
// output is deterministic so it can be diffed and golden-tested.
func GenerateProfile(p ProfileSpec) (string, error) {
	if !profileNameRE.MatchString(p.Name) {
		return "", fmt.Errorf("apparmor: %w: profile name %q must match %s", ErrInvalidName, p.Name, profileNameRE)
	}
	if p.Kernel == "" {
		return "", fmt.Errorf("apparmor: %w: no kernel", ErrInvalidPath)
	}
	var rules []rule
	add := func(p, perms, why string) error {
		if err := ValidatePath(p); err != nil {
			return fmt.Errorf("apparmor: %s: %w", why, err)
		}
		rules = append(rules, rule{p, perms, why})
		return nil
	}
	if err := add(p.Kernel, "r", "kernel"); err != nil {
		return "", err
	}
	if p.Initrd != "" {
		if err := add(p.Initrd, "r", "initrd"); err != nil {
			return "", err
		}
	}
	for i, d := range p.Disks {
		perms, why := "rw", fmt.Sprintf("disk %d", i)
		if d.ReadOnly {
			perms, why = "r", why+" (read-only)"
		}
		if err := add(d.Path, perms, why); err != nil {
			return "", err
		}
	}
	for _, dev := range p.Devices {
		if !strings.HasPrefix(dev, "/dev/") {
			return "", fmt.Errorf("apparmor: device %w %q: not under /dev", ErrInvalidPath, dev)
		}
		if err := add(dev, "rw", "device"); err != nil {
			return "", err
		}
	}
	if p.JailRoot != "" {
		if err := ValidatePath(p.JailRoot); err != nil {
			return "", fmt.Errorf("apparmor: jail root: %w", err)
		}
		if p.JailRoot == "/" {
			return "", fmt.Errorf("apparmor: jail root: %w %q: must not be /", ErrInvalidPath, p.JailRoot)
		}
		for _, r := range rules[:len(rules):len(rules)] {
			rules = append(rules, rule{p.JailRoot + r.path, r.perms, r.why + ", host view"})
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# AppArmor profile for one govmm VM. Generated; do not edit.\n")
	// attach_disconnected: after pivot_root and detaching the old root,
	// files opened earlier have no path from the new root; without the
	// flag every access to them would be denied as "disconnected".
	fmt.Fprintf(&b, "profile %s flags=(attach_disconnected) {\n", p.Name)
	b.WriteString("  # The Go runtime reads its own /proc entries and the CPU and THP\n")
	b.WriteString("  # topology. /proc/self resolves to /proc/<pid>, so the rule names\n")
	b.WriteString("  # that; owner plus the jail's PID namespace keep it to ourselves.\n")
	b.WriteString("  /proc/self/** r,\n")
	b.WriteString("  owner /proc/[0-9]*/** r,\n")
	b.WriteString("  /sys/devices/system/cpu/online r,\n")
	b.WriteString("  /sys/kernel/mm/transparent_hugepage/hpage_pmd_size r,\n")
	b.WriteString("  # Signals and ptrace-style reads only within this VM's own profile:\n")
	b.WriteString("  # the runtime signals its own threads (preemption) and kicks vCPUs.\n")
	fmt.Fprintf(&b, "  signal (send, receive) peer=%s,\n", p.Name)
	fmt.Fprintf(&b, "  ptrace (read, readby) peer=%s,\n", p.Name)
	b.WriteString("  # This VM's files and devices, and nothing else.\n")
	for _, r := range rules {
		// Quoted so spaces are literal; ValidatePath has already refused
		// the characters that would be special even inside quotes.
		fmt.Fprintf(&b, "  \"%s\" %s, # %s\n", r.path, r.perms, r.why)
	}
	b.WriteString("}\n")
	return b.String(), nil
}
