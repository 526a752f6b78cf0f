package mac

import (
	"errors"
	"testing"
)

func probe(ok bool, reason string) Probe { return func() (bool, string) { return ok, reason } }

func TestSelectWith(t *testing.T) {
	none := Probes{
		SELinux:  probe(false, "/sys/fs/selinux not mounted"),
		AppArmor: probe(false, "no apparmor"),
		Landlock: probe(false, "ENOSYS"),
	}
	all := Probes{SELinux: probe(true, ""), AppArmor: probe(true, ""), Landlock: probe(true, "")}
	onlyAA := none
	onlyAA.AppArmor = probe(true, "")
	onlyLL := none
	onlyLL.Landlock = probe(true, "")

	for _, tc := range []struct {
		name     string
		mode     string
		probes   Probes
		want     Kind
		warn     bool
		wantErr  error
		wantText string
	}{
		{"auto picks selinux first", "auto", all, KindSELinux, false, nil, ""},
		{"auto falls to apparmor", "auto", onlyAA, KindAppArmor, false, nil, ""},
		{"auto falls to landlock", "auto", onlyLL, KindLandlock, false, nil, ""},
		{"auto with nothing warns", "auto", none, KindNone, true, nil, ""},
		{"required with something", "required", onlyLL, KindLandlock, false, nil, ""},
		{"required with nothing", "required", none, "", false, ErrNoMAC,
			"--mac=required: no MAC mechanism available (SELinux: /sys/fs/selinux not mounted, AppArmor: no apparmor, Landlock: ENOSYS)"},
		{"off ignores availability", "off", all, KindNone, false, nil, ""},
		{"explicit selinux", "selinux", all, KindSELinux, false, nil, ""},
		{"explicit apparmor skips selinux", "apparmor", all, KindAppArmor, false, nil, ""},
		{"explicit selinux missing", "selinux", onlyAA, "", false, ErrNotAvailable,
			"--mac=selinux: SELinux is not available on this host: /sys/fs/selinux not mounted"},
		{"explicit apparmor missing", "apparmor", onlyLL, "", false, ErrNotAvailable,
			"--mac=apparmor: AppArmor is not available on this host: no apparmor"},
		{"explicit landlock missing", "landlock", onlyAA, "", false, ErrNotAvailable,
			"--mac=landlock: Landlock is not available on this host: ENOSYS"},
		{"unknown", "smack", all, "", false, ErrUnknownMode, ""},
		{"empty", "", all, "", false, ErrUnknownMode, ""},
		{"case matters", "SELinux", all, "", false, ErrUnknownMode, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := SelectWith(tc.mode, tc.probes)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if tc.wantText != "" && err.Error() != tc.wantText {
					t.Fatalf("err = %q\nwant  %q", err, tc.wantText)
				}
				return
			}
			if err != nil || b.Kind != tc.want || (b.Warning != "") != tc.warn {
				t.Fatalf("got %+v, %v; want %s warn=%v", b, err, tc.want, tc.warn)
			}
		})
	}
}
