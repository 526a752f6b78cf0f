package mac

import (
	"fmt"
	"strings"
)

// Kind names a MAC mechanism.
type Kind string

const (
	KindSELinux  Kind = "selinux"
	KindAppArmor Kind = "apparmor"
	KindLandlock Kind = "landlock"
	KindNone     Kind = "none"
)

// Backend is the outcome of Select.
type Backend struct {
	Kind Kind
	// Warning is set when the VM will run without MAC although the
	// operator did not say --mac=off (auto found nothing); the caller
	// should log it at WARN.
	Warning string
}

// Probe reports whether a mechanism is usable and, if not, why.
type Probe func() (ok bool, reason string)

// Probes are the availability checks Select consults; tests replace them.
type Probes struct {
	SELinux, AppArmor, Landlock Probe
}

// Modes are the --mac values Select accepts.
var Modes = []string{"auto", string(KindSELinux), string(KindAppArmor), string(KindLandlock), "off", "required"}

// ValidateMode checks a --mac value without probing the host.
func ValidateMode(mode string) error {
	for _, m := range Modes {
		if mode == m {
			return nil
		}
	}
	return fmt.Errorf("%w %q: want %s", ErrUnknownMode, mode, strings.Join(Modes, ", "))
}

// Select resolves --mac=auto|selinux|apparmor|landlock|off|required against
// this host.
func Select(mode string) (Backend, error) { return SelectWith(mode, HostProbes()) }

// SelectWith is Select with explicit probes.
//
// auto prefers SELinux, then AppArmor, then Landlock: the first two are
// system policies that label or profile every VM distinctly and cannot be
// loosened by the confined process, while Landlock is a self-imposed,
// path-only restriction. required is auto that refuses to run unconfined.
func SelectWith(mode string, p Probes) (Backend, error) {
	order := []struct {
		kind  Kind
		title string
		probe Probe
	}{
		{KindSELinux, "SELinux", p.SELinux},
		{KindAppArmor, "AppArmor", p.AppArmor},
		{KindLandlock, "Landlock", p.Landlock},
	}
	switch mode {
	case "off":
		return Backend{Kind: KindNone}, nil
	case "auto", "required":
		var why []string
		for _, m := range order {
			ok, reason := m.probe()
			if ok {
				return Backend{Kind: m.kind}, nil
			}
			why = append(why, m.title+": "+reason)
		}
		summary := strings.Join(why, ", ")
		if mode == "required" {
			return Backend{}, fmt.Errorf("--mac=required: %w (%s)", ErrNoMAC, summary)
		}
		return Backend{Kind: KindNone, Warning: "--mac=auto: no MAC mechanism available, running without MAC labels (" + summary + ")"}, nil
	}
	for _, m := range order {
		if mode != string(m.kind) {
			continue
		}
		if ok, reason := m.probe(); !ok {
			return Backend{}, fmt.Errorf("--mac=%s: %s is %w on this host: %s", mode, m.title, ErrNotAvailable, reason)
		}
		return Backend{Kind: m.kind}, nil
	}
	return Backend{}, ValidateMode(mode)
}
