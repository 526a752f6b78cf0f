package main

import (
	"fmt"
	"log/slog"

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
	b, err := o.macBackend()
	return err == nil && (b.Kind == mac.KindSELinux || b.Kind == mac.KindAppArmor)
}

// macBackend resolves --mac against this host once: its probes read /proc
// and /sys, and the supervisor decision, Landlock and the labels all ask.
func (o *runOptions) macBackend() (mac.Backend, error) {
	if !o.macResolved {
		o.macB, o.macErr = mac.Select(o.mac)
		o.macResolved = true
	}
	return o.macB, o.macErr
}

// execLabel prepares the SELinux or AppArmor confinement of the VM
// process: what the supervisor runs on the forking thread (beforeExec) and
// what it runs after the VM ended (cleanup). files are the host paths the
// VM uses (kernel, initrd, disks); jailRoot is the per-VM root when jailed.
// For other mechanisms it returns nils.
func (o *runOptions) execLabel(log *slog.Logger, jailRoot string) (beforeExec func() error, cleanup func(), err error) {
	b, err := o.macBackend()
	if err != nil {
		return nil, nil, err
	}
	if b.Kind != mac.KindSELinux && b.Kind != mac.KindAppArmor {
		return nil, nil, nil
	}
	f, err := o.vmFiles()
	if err != nil {
		return nil, nil, fmt.Errorf("--mac=%s: %w", o.mac, err)
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
				files := f.images()
				for _, d := range f.disks {
					files = append(files, d.Path)
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
		spec := mac.ProfileSpec{Name: "govmm-" + o.id, Kernel: f.kernel, Initrd: f.initrd,
			Devices: []string{"/dev/kvm"}, JailRoot: jailRoot}
		for _, d := range f.disks {
			spec.Disks = append(spec.Disks, mac.Disk{Path: d.Path, ReadOnly: d.ReadOnly})
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
