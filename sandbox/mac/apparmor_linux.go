package mac

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const apparmorFS = "/sys/kernel/security/apparmor"

// AppArmorAvailable reports whether AppArmor is enabled and its securityfs
// interface is mounted, and if not, why.
func AppArmorAvailable() (bool, string) { return apparmorAvailableAt("/") }

func apparmorAvailableAt(root string) (bool, string) {
	if _, err := os.Stat(filepath.Join(root, apparmorFS)); err != nil {
		reason := apparmorFS + " does not exist"
		switch {
		case !exists(filepath.Join(root, "sys/module/apparmor")):
			reason += " (kernel without AppArmor: /sys/module/apparmor absent)"
		case !mountedFS(filepath.Join(root, "proc/self/mounts"), "securityfs"):
			reason += " (securityfs not mounted on /sys/kernel/security)"
		default:
			reason += " (AppArmor not enabled in the kernel's lsm= list)"
		}
		return false, reason
	}
	if b, err := os.ReadFile(filepath.Join(root, "sys/module/apparmor/parameters/enabled")); err == nil &&
		strings.TrimSpace(string(b)) != "Y" {
		return false, "AppArmor is disabled (/sys/module/apparmor/parameters/enabled is not Y)"
	}
	return true, ""
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func apparmorNotAvailable() error {
	if ok, reason := AppArmorAvailable(); !ok {
		return fmt.Errorf("apparmor: %w: %s", ErrNotAvailable, reason)
	}
	return nil
}

// LoadProfile loads (or replaces) profile text from GenerateProfile into
// the kernel with apparmor_parser -r. The parser is the only supported way
// to compile profile text into the kernel's binary policy format.
func LoadProfile(profile string) error {
	if err := apparmorNotAvailable(); err != nil {
		return err
	}
	parser, err := exec.LookPath("apparmor_parser")
	if err != nil {
		return fmt.Errorf("apparmor: %w: apparmor_parser not found: %v", ErrNotAvailable, err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(parser, "-r") // no file argument: the profile comes on stdin
	cmd.Stdin = strings.NewReader(profile)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apparmor: apparmor_parser -r: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// RemoveProfile unloads the named profile when the VM ends, so profiles of
// dead VMs do not pile up in the kernel.
func RemoveProfile(name string) error {
	if err := apparmorNotAvailable(); err != nil {
		return err
	}
	if !profileNameRE.MatchString(name) {
		return fmt.Errorf("apparmor: %w: profile name %q", ErrInvalidName, name)
	}
	return writeAttr(apparmorFS+"/.remove", name)
}

// ApplyOnExec makes the calling thread's next execve enter profile name.
// Like SetExecLabel it is per thread: hold runtime.LockOSThread through the
// exec. The LSM-specific attr/apparmor/exec is tried first because on
// stacked-LSM kernels the generic attr/exec may belong to another LSM.
func ApplyOnExec(name string) error {
	if err := apparmorNotAvailable(); err != nil {
		return err
	}
	if !profileNameRE.MatchString(name) {
		return fmt.Errorf("apparmor: %w: profile name %q", ErrInvalidName, name)
	}
	err := writeAttr("/proc/thread-self/attr/apparmor/exec", "exec "+name)
	if errors.Is(err, os.ErrNotExist) {
		err = writeAttr("/proc/thread-self/attr/exec", "exec "+name)
	}
	return err
}
