//go:build linux

// Command initmarker is the /init of the full-boot test: packed with
// `govmm mkinitrd`, it proves a kernel got all the way to user space under
// govmm. It prints a marker the test waits for, then restarts the machine,
// which with reboot=k is an i8042 reset: govmm then exits 0.
package main

import (
	"fmt"
	"os"
	"syscall"
)

// Marker is what the test looks for on the console.
const Marker = "GOVMM-INIT-MARKER: user space reached"

func main() {
	fmt.Fprintln(os.Stdout, Marker)
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		fmt.Printf("GOVMM-INIT-CMDLINE: %s", b)
	}
	fmt.Printf("GOVMM-INIT-CPUS: %d\n", countCPUs())
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART); err != nil {
		fmt.Fprintln(os.Stderr, "initmarker: reboot:", err)
	}
	select {} // init must never exit: the kernel would panic
}

// countCPUs reads /sys/devices/system/cpu/online ("0-1") when sysfs is
// mounted, else reports 0; the test compares it with --cpus.
func countCPUs() int {
	if err := syscall.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return 0
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	var lo, hi int
	if n, _ := fmt.Sscanf(string(b), "%d-%d", &lo, &hi); n == 2 {
		return hi - lo + 1
	}
	return 1
}
