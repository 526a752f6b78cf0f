package mac

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenSpec() ProfileSpec {
	return ProfileSpec{
		Name:     "govmm-vm-1",
		Kernel:   "/var/lib/govmm/images/vmlinux",
		Initrd:   "/var/lib/govmm/images/initrd.img",
		Disks:    []Disk{{Path: "/var/lib/govmm/vm-1/root.img"}, {Path: "/var/lib/govmm/images/base image.img", ReadOnly: true}},
		Devices:  []string{"/dev/kvm", "/dev/net/tun"},
		JailRoot: "/srv/jail/vm-1",
	}
}

func TestGenerateProfileGolden(t *testing.T) {
	got, err := GenerateProfile(goldenSpec())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "govmm-vm-1.apparmor")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("profile differs from %s (run with -update after checking):\n%s", golden, got)
	}
}

// The properties the golden file is meant to show, checked directly so a
// careless -update cannot bless a broken profile.
func TestGenerateProfileProperties(t *testing.T) {
	got, err := GenerateProfile(goldenSpec())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"profile govmm-vm-1 flags=(attach_disconnected) {\n",
		`  "/var/lib/govmm/images/vmlinux" r,`,
		`  "/var/lib/govmm/vm-1/root.img" rw,`,
		`  "/var/lib/govmm/images/base image.img" r,`,
		`  "/dev/kvm" rw,`,
		`  "/srv/jail/vm-1/dev/kvm" rw,`,
		"  signal (send, receive) peer=govmm-vm-1,\n",
		"  /sys/devices/system/cpu/online r,\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	for _, bad := range []string{"capability", "network", "mount", "\n  /** ", "deny "} {
		if strings.Contains(got, bad) {
			t.Errorf("profile contains %q", bad)
		}
	}
}

func TestGenerateProfileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ProfileSpec)
		want error
	}{
		{"glob star", func(p *ProfileSpec) { p.Kernel = "/boot/*" }, ErrInvalidPath},
		{"recursive glob", func(p *ProfileSpec) { p.Disks[0].Path = "/var/**" }, ErrInvalidPath},
		{"question mark", func(p *ProfileSpec) { p.Initrd = "/boot/initrd?" }, ErrInvalidPath},
		{"char class", func(p *ProfileSpec) { p.Disks[1].Path = "/disk[0-9]" }, ErrInvalidPath},
		{"alternation", func(p *ProfileSpec) { p.Kernel = "/{boot,etc}/x" }, ErrInvalidPath},
		{"variable", func(p *ProfileSpec) { p.Kernel = "@{HOME}/vmlinux" }, ErrInvalidPath},
		{"caret", func(p *ProfileSpec) { p.Kernel = "/boot/^x" }, ErrInvalidPath},
		{"quote breaks out", func(p *ProfileSpec) { p.Kernel = `/boot/x" rw, /** rwx, "/y` }, ErrInvalidPath},
		{"newline injects rule", func(p *ProfileSpec) { p.Kernel = "/boot/x r,\n  /** rwx,\n  /y" }, ErrInvalidPath},
		{"backslash", func(p *ProfileSpec) { p.Kernel = `/boot/x\*` }, ErrInvalidPath},
		{"NUL", func(p *ProfileSpec) { p.Kernel = "/boot/x\x00" }, ErrInvalidPath},
		{"relative", func(p *ProfileSpec) { p.Kernel = "boot/vmlinux" }, ErrInvalidPath},
		{"dot dot", func(p *ProfileSpec) { p.Disks[0].Path = "/var/lib/../../etc/shadow" }, ErrInvalidPath},
		{"trailing slash", func(p *ProfileSpec) { p.Kernel = "/boot/" }, ErrInvalidPath},
		{"no kernel", func(p *ProfileSpec) { p.Kernel = "" }, ErrInvalidPath},
		{"device outside /dev", func(p *ProfileSpec) { p.Devices = []string{"/etc/shadow"} }, ErrInvalidPath},
		{"jail root /", func(p *ProfileSpec) { p.JailRoot = "/" }, ErrInvalidPath},
		{"jail root glob", func(p *ProfileSpec) { p.JailRoot = "/srv/*" }, ErrInvalidPath},
		{"name with space", func(p *ProfileSpec) { p.Name = "govmm vm" }, ErrInvalidName},
		{"name with brace", func(p *ProfileSpec) { p.Name = "govmm-x { /** rwx, }" }, ErrInvalidName},
		{"empty name", func(p *ProfileSpec) { p.Name = "" }, ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := goldenSpec()
			spec.Disks = append([]Disk(nil), spec.Disks...)
			tc.edit(&spec)
			out, err := GenerateProfile(spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("GenerateProfile = %v, want %v; profile:\n%s", err, tc.want, out)
			}
		})
	}
}
