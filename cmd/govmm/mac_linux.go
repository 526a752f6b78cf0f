package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/govmm/govmm/sandbox/mac"
)

// Defaults of the sVirt model (as libvirt uses them): the VMM runs in
// svirt_t, its images are svirt_image_t, both with the VM's MCS pair.
const (
	selinuxDomain    = "svirt_t"
	selinuxImageType = "svirt_image_t"
)

// wantsExecLabel reports whether --mac resolves, on this host, to a
// mechanism that labels the VM process at exec (SELinux, AppArmor): that
// needs a supervisor, which sets the label on the thread that forks the
// VM and undoes the image labels or profile when it ends.
func (o *runOptions) wantsExecLabel() bool {
	b, err := mac.Select(o.mac)
	return err == nil && (b.Kind == mac.KindSELinux || b.Kind == mac.KindAppArmor)
}

// execLabel prepares the SELinux or AppArmor confinement of the VM
// process: what the supervisor runs on the forking thread (beforeExec) and
// what it runs after the VM ended (cleanup). files are the host paths the
// VM uses (kernel, initrd, disks); jailRoot is the per-VM root when jailed.
// For other mechanisms it returns nils.
func (o *runOptions) execLabel(log *slog.Logger, jailRoot string) (beforeExec func() error, cleanup func(), err error) {
	b, err := mac.Select(o.mac)
	if err != nil {
		return nil, nil, err
	}
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	switch b.Kind {
	case mac.KindSELinux:
		// A category pair no other running VM holds, released when this
		// one ends (or when a crashed supervisor's lock file is found
		// stale).
		res, err := (&mac.Allocator{}).Allocate(o.id)
		if err != nil {
			return nil, nil, fmt.Errorf("--mac=%s: %w", o.mac, err)
		}
		proc, err := mac.ProcessLabel(selinuxDomain, res.Level)
		if err == nil {
			var img string
			if img, err = mac.ImageLabel(selinuxImageType, res.Level); err == nil {
				var files []string
				for _, p := range []string{o.kernel, o.initrd} {
					if p != "" {
						files = append(files, abs(p))
					}
				}
				for _, d := range o.disks {
					files = append(files, abs(d.Path))
				}
				var rl *mac.Relabel
				if rl, err = mac.LabelFiles(img, files...); err == nil {
					log.Info("selinux: VM labelled", "process", proc, "images", img)
					return func() error { return mac.SetExecLabel(proc) }, func() {
						if err := rl.Restore(); err != nil {
							log.Error("selinux: restoring image labels", "err", err)
						}
						if err := res.Release(); err != nil {
							log.Error("selinux: releasing the MCS pair", "err", err)
						}
					}, nil
				}
			}
		}
		_ = res.Release()
		return nil, nil, fmt.Errorf("--mac=%s: %w", o.mac, err)
	case mac.KindAppArmor:
		spec := mac.ProfileSpec{Name: "govmm-" + o.id, Kernel: abs(o.kernel), Initrd: abs(o.initrd),
			Devices: []string{"/dev/kvm"}, JailRoot: jailRoot}
		for _, d := range o.disks {
			spec.Disks = append(spec.Disks, mac.Disk{Path: abs(d.Path), ReadOnly: d.ReadOnly})
		}
		profile, err := mac.GenerateProfile(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("--mac=%s: %w", o.mac, err)
		}
		if err := mac.LoadProfile(profile); err != nil {
			return nil, nil, fmt.Errorf("--mac=%s: %w", o.mac, err)
		}
		log.Info("apparmor: profile loaded", "profile", spec.Name)
		return func() error { return mac.ApplyOnExec(spec.Name) }, func() {
			if err := mac.RemoveProfile(spec.Name); err != nil {
				log.Error("apparmor: removing the profile", "err", err)
			}
		}, nil
	}
	return nil, nil, nil
}
