//go:build !linux

package mac

// HostProbes reports every mechanism unavailable: all three are Linux LSMs.
func HostProbes() Probes {
	no := func() (bool, string) { return false, "not Linux" }
	return Probes{SELinux: no, AppArmor: no, Landlock: no}
}
