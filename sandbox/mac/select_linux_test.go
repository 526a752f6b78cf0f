package mac

import (
	"errors"
	"strings"
	"testing"
)

// The real host. HOST.md expects no LSM at all, but the measured kernel
// (6.18) has Landlock without SELinux or AppArmor, so the outcome is
// asserted from what the probes say rather than assumed.
func TestSelectOnThisHost(t *testing.T) {
	p := HostProbes()
	se, _ := p.SELinux()
	aa, _ := p.AppArmor()
	ll, _ := p.Landlock()
	req, reqErr := Select("required")
	auto, autoErr := Select("auto")
	switch {
	case se:
		if req.Kind != KindSELinux || auto.Kind != KindSELinux {
			t.Errorf("SELinux available but required=%+v,%v auto=%+v,%v", req, reqErr, auto, autoErr)
		}
	case aa:
		if req.Kind != KindAppArmor || auto.Kind != KindAppArmor {
			t.Errorf("AppArmor available but required=%+v,%v auto=%+v,%v", req, reqErr, auto, autoErr)
		}
	case ll:
		if reqErr != nil || req.Kind != KindLandlock || autoErr != nil || auto.Kind != KindLandlock || auto.Warning != "" {
			t.Errorf("only Landlock available but required=%+v,%v auto=%+v,%v", req, reqErr, auto, autoErr)
		}
	default:
		checkRequiredMessage(t, reqErr)
		if autoErr != nil || auto.Kind != KindNone || auto.Warning == "" {
			t.Errorf("Select(auto) = %+v, %v; want none with a warning", auto, autoErr)
		}
	}
	t.Logf("selinux=%v apparmor=%v landlock=%v: required=%+v %v", se, aa, ll, req, reqErr)
}

// --mac=required with this host's real SELinux and AppArmor probes and
// Landlock masked off (a kernel without it): the message must name every
// mechanism and the host's real reason for SELinux and AppArmor.
func TestSelectRequiredHostReasons(t *testing.T) {
	p := HostProbes()
	if ok, _ := p.SELinux(); ok {
		t.Skip("SELinux available")
	}
	if ok, _ := p.AppArmor(); ok {
		t.Skip("AppArmor available")
	}
	p.Landlock = func() (bool, string) {
		return false, "landlock_create_ruleset: ENOSYS (kernel built without CONFIG_SECURITY_LANDLOCK)"
	}
	_, err := SelectWith("required", p)
	checkRequiredMessage(t, err)
	t.Log(err)
}

func checkRequiredMessage(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNoMAC) {
		t.Fatalf("Select(required) = %v, want ErrNoMAC", err)
	}
	for _, want := range []string{
		"--mac=required: no MAC mechanism available (",
		"SELinux: /sys/fs/selinux not mounted",
		"AppArmor: /sys/kernel/security/apparmor does not exist",
		"Landlock: landlock_create_ruleset: ",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}
