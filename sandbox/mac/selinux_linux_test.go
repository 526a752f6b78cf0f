package mac

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSELinuxAvailableAt(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      map[string]string
		ok         bool
		wantReason string
	}{
		{"enforce file", map[string]string{"sys/fs/selinux/enforce": "1"}, true, ""},
		{"selinuxfs mounted elsewhere", map[string]string{"proc/self/mounts": "selinuxfs /selinux selinuxfs rw 0 0\n"}, true, ""},
		{"kernel has it, not mounted", map[string]string{
			"proc/self/mounts": "proc /proc proc rw 0 0\n",
			"proc/filesystems": "nodev\tproc\nnodev\tselinuxfs\n",
		}, false, "/sys/fs/selinux not mounted"},
		{"kernel without SELinux", map[string]string{"proc/filesystems": "nodev\tproc\n"}, false,
			"/sys/fs/selinux not mounted (no selinuxfs in /proc/filesystems: kernel without SELinux)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			ok, reason := selinuxAvailableAt(root)
			if ok != tc.ok || reason != tc.wantReason {
				t.Fatalf("got (%v, %q), want (%v, %q)", ok, reason, tc.ok, tc.wantReason)
			}
		})
	}
}

// On a host without SELinux (this project's test host) every apply
// function must refuse with ErrNotAvailable and the reason.
func TestSELinuxApplyNotAvailable(t *testing.T) {
	if ok, _ := SELinuxAvailable(); ok {
		t.Skip("SELinux is available here; see TestSELinuxLabelFilesRestore")
	}
	_, reason := SELinuxAvailable()
	f := filepath.Join(t.TempDir(), "disk.img")
	writeFiles(t, filepath.Dir(f), map[string]string{"disk.img": ""})
	_, lerr := LabelFiles("system_u:object_r:svirt_image_t:s0:c1,c2", f)
	for name, err := range map[string]error{
		"SetExecLabel":   SetExecLabel("system_u:system_r:svirt_t:s0:c1,c2"),
		"ClearExecLabel": ClearExecLabel(),
		"LabelFiles":     lerr,
	} {
		if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want ErrNotAvailable with reason %q", name, err, reason)
		}
	}
}

// Where SELinux exists: label a file with a VM's image label and restore
// the label it had. Needs root with relabel permission in the policy.
func TestSELinuxLabelFilesRestore(t *testing.T) {
	if ok, reason := SELinuxAvailable(); !ok {
		t.Skip("SELinux not available: " + reason)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "disk.img")
	writeFiles(t, dir, map[string]string{"disk.img": ""})
	before, err := getLabel(f)
	if err != nil {
		t.Fatal(err)
	}
	label, _ := ImageLabel("", "s0:c1,c2")
	r, err := LabelFiles(label, f)
	if err != nil {
		t.Skipf("policy refused relabel: %v", err)
	}
	if got, _ := getLabel(f); strings.TrimRight(string(got), "\x00") != label {
		t.Errorf("label %q, want %q", got, label)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if got, _ := getLabel(f); string(got) != string(before) {
		t.Errorf("restored %q, want %q", got, before)
	}
}
