package mac

import (
	"fmt"
	"regexp"
)

// Defaults of the sVirt model: the VMM runs as svirt_t and its images are
// svirt_image_t, both qualified by the VM's category pair, so the policy
// lets a VM touch only images that carry exactly its categories.
const (
	DefaultDomain    = "svirt_t"
	DefaultImageType = "svirt_image_t"
)

// typeRE is a conservative SELinux type identifier. The policy language
// allows a little more, but anything outside this set (':' above all) would
// change the meaning of the context string it is pasted into.
var typeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,126}$`)

// ValidateType checks an SELinux type or domain name.
func ValidateType(name string) error {
	if !typeRE.MatchString(name) {
		return fmt.Errorf("selinux: %w: type %q must match [a-zA-Z][a-zA-Z0-9_]*", ErrInvalidName, name)
	}
	return nil
}

func buildContext(role, typ, level string) (string, error) {
	if err := ValidateType(typ); err != nil {
		return "", err
	}
	if err := ValidateLevel(level); err != nil {
		return "", fmt.Errorf("selinux: %w", err)
	}
	return "system_u:" + role + ":" + typ + ":" + level, nil
}

// ProcessLabel returns the context the VMM process runs in, e.g.
// "system_u:system_r:svirt_t:s0:c12,c345". An empty domain means
// DefaultDomain. It fails on names or levels that are not ours, because a
// label built from them could grant more than one VM's categories.
func ProcessLabel(domain, level string) (string, error) {
	if domain == "" {
		domain = DefaultDomain
	}
	return buildContext("system_r", domain, level)
}

// ImageLabel returns the context for the VM's kernel, initrd and disks, e.g.
// "system_u:object_r:svirt_image_t:s0:c12,c345". An empty type means
// DefaultImageType.
func ImageLabel(typ, level string) (string, error) {
	if typ == "" {
		typ = DefaultImageType
	}
	return buildContext("object_r", typ, level)
}
