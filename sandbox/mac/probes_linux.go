package mac

// HostProbes checks the running kernel.
func HostProbes() Probes {
	return Probes{
		SELinux:  SELinuxAvailable,
		AppArmor: AppArmorAvailable,
		Landlock: LandlockAvailable,
	}
}
