package mac

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestAppArmorAvailableAt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		ok     bool
		reason string
	}{
		{"kernel without apparmor", nil, false, "/sys/kernel/security/apparmor does not exist (kernel without AppArmor"},
		{"securityfs not mounted", map[string]string{"sys/module/apparmor/parameters/enabled": "Y\n"}, false,
			"/sys/kernel/security/apparmor does not exist (securityfs not mounted"},
		{"not in lsm=", map[string]string{
			"sys/module/apparmor/parameters/enabled": "Y\n",
			"proc/self/mounts":                       "securityfs /sys/kernel/security securityfs rw 0 0\n",
		}, false, "/sys/kernel/security/apparmor does not exist (AppArmor not enabled"},
		{"disabled", map[string]string{
			"sys/kernel/security/apparmor/profiles":  "",
			"sys/module/apparmor/parameters/enabled": "N\n",
		}, false, "AppArmor is disabled"},
		{"enabled", map[string]string{
			"sys/kernel/security/apparmor/profiles":  "",
			"sys/module/apparmor/parameters/enabled": "Y\n",
		}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			ok, reason := apparmorAvailableAt(root)
			if ok != tc.ok || !strings.HasPrefix(reason, tc.reason) || (tc.reason == "" && reason != "") {
				t.Fatalf("got (%v, %q), want (%v, %q...)", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

func TestAppArmorApplyNotAvailable(t *testing.T) {
	ok, reason := AppArmorAvailable()
	if ok {
		t.Skip("AppArmor is available here; see TestAppArmorLoadRemove")
	}
	for name, err := range map[string]error{
		"LoadProfile":   LoadProfile("profile x {}\n"),
		"ApplyOnExec":   ApplyOnExec("govmm-vm-1"),
		"RemoveProfile": RemoveProfile("govmm-vm-1"),
	} {
		if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want ErrNotAvailable with %q", name, err, reason)
		}
	}
}

// Where AppArmor exists: the generated profile must be accepted by the real
// parser and kernel.
func TestAppArmorLoadRemove(t *testing.T) {
	if ok, reason := AppArmorAvailable(); !ok {
		t.Skip("AppArmor not available: " + reason)
	}
	if os.Geteuid() != 0 {
		t.Skip("loading profiles needs root")
	}
	if _, err := exec.LookPath("apparmor_parser"); err != nil {
		t.Skip("apparmor_parser not installed")
	}
	spec := goldenSpec()
	spec.Name = "govmm-test-load"
	prof, err := GenerateProfile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadProfile(prof); err != nil {
		t.Fatal(err)
	}
	if err := RemoveProfile(spec.Name); err != nil {
		t.Fatal(err)
	}
}
