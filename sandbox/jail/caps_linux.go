package jail

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capName names the capabilities this package deals with, for errors.
var capName = map[uintptr]string{
	unix.CAP_CHOWN:           "CAP_CHOWN",
	unix.CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
	unix.CAP_SETGID:          "CAP_SETGID",
	unix.CAP_SETUID:          "CAP_SETUID",
	unix.CAP_SYS_ADMIN:       "CAP_SYS_ADMIN",
	unix.CAP_SYS_RESOURCE:    "CAP_SYS_RESOURCE",
	unix.CAP_MKNOD:           "CAP_MKNOD",
}

// childCaps are the capabilities the jailed child needs between its exec
// and its setuid, and why. Nothing else crosses the exec.
//
//	CAP_SYS_ADMIN   mount (private, tmpfs, binds, remounts), pivot_root,
//	                umount, sethostname
//	CAP_SETUID/GID  setgroups, setgid, setuid
//	CAP_MKNOD       /dev/kvm, /dev/net/tun (only with KVM or TUN)
//	CAP_CHOWN       hand those nodes to UID:GID (only with KVM or TUN)
//
// optional ones are given when the supervisor has them and dropped
// silently otherwise:
//
//	CAP_DAC_READ_SEARCH  reach bind sources under directories root may
//	                     not search (root-owned 0700 trees are fine without)
//	CAP_SYS_RESOURCE     raise a limit above the supervisor's hard limit
//	                     (some sandboxes, this project's CI among them, run
//	                     root without it; lowering limits needs nothing)
func childCaps(devices bool) (required, optional []uintptr) {
	required = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETUID, unix.CAP_SETGID}
	if devices {
		required = append(required, unix.CAP_MKNOD, unix.CAP_CHOWN)
	}
	optional = []uintptr{unix.CAP_DAC_READ_SEARCH, unix.CAP_SYS_RESOURCE}
	return required, optional
}

func capNameOf(c uintptr) string {
	if n, ok := capName[c]; ok {
		return n
	}
	return "capability " + strconv.Itoa(int(c))
}

type capSets struct {
	hdr  unix.CapUserHeader
	data [2]unix.CapUserData
}

// getCaps reads the calling thread's capability sets.
func getCaps() (*capSets, error) {
	c := &capSets{hdr: unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}}
	if err := unix.Capget(&c.hdr, &c.data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	return c, nil
}

func (c *capSets) set() error {
	if err := unix.Capset(&c.hdr, &c.data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

func capBit(cp uintptr) (int, uint32) { return int(cp / 32), 1 << (cp % 32) }

func (c *capSets) permitted(cp uintptr) bool {
	i, b := capBit(cp)
	return c.data[i].Permitted&b != 0
}

func (c *capSets) addInheritable(cp uintptr) {
	i, b := capBit(cp)
	c.data[i].Inheritable |= b
}

func (c *capSets) zero() bool {
	for _, d := range c.data {
		if d.Effective|d.Permitted|d.Inheritable != 0 {
			return false
		}
	}
	return true
}

func inBoundingSet(cp uintptr) (bool, error) {
	r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, cp, 0, 0, 0)
	if err != nil {
		return false, err
	}
	return r == 1, nil
}

// lastCap is the highest capability the running kernel knows
// (/proc/sys/kernel/cap_last_cap), or, if that cannot be read, found by
// probing PR_CAPBSET_READ until it fails with EINVAL.
func lastCap() (uintptr, error) {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return uintptr(n), nil
		}
	}
	for c := uintptr(0); c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				if c == 0 {
					break
				}
				return c - 1, nil
			}
			return 0, fmt.Errorf("PR_CAPBSET_READ %d: %w", c, err)
		}
	}
	return 0, errors.New("cannot find the kernel's last capability")
}
