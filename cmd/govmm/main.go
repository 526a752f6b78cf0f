// Command govmm is a hardened, minimal virtual machine monitor.
//
//	govmm run [flags]     boot a microVM (the embedded demo guest without --kernel)
//	govmm mkinitrd        pack a static binary into an initramfs as /init
//	govmm check [--json]  audit this host against NIST SP 800-125A / BSI SYS.1.5
//	govmm version         print the version
//
// Exit codes of `govmm run` are documented in docs/design.md and pinned in
// package vmm: 0 guest reset, 1 VMM error, 2 usage error, 3 guest halt,
// 4 guest power-off, 5 guest crash, 6 stopped by the user.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/govmm/govmm/vmm"
)

const usageLine = "usage: govmm run [flags] | govmm mkinitrd -o FILE --init BIN | govmm check [--json] | govmm version   (govmm run -h for flags)"

// version is set at link time by the Makefile (-X main.version=...).
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageLine)
		return vmm.CodeUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "govmm %s (%s)\n", version, buildInfo())
		return 0
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "mkinitrd":
		return cmdMkinitrd(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usageLine)
		return 0
	}
	fmt.Fprintf(stderr, "govmm: unknown command %q (want run, mkinitrd, check or version)\n", args[0])
	return vmm.CodeUsage
}

func buildInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "no build info"
	}
	return bi.GoVersion
}

// fail prints one line, the error, and returns the exit code for it. No
// stack traces: a user's mistake deserves a sentence, not a dump.
func fail(stderr io.Writer, code int, err error) int {
	fmt.Fprintf(stderr, "govmm: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	return code
}

// maxImageSize bounds how much of a kernel file we read into memory: far
// above any real kernel, far below what could exhaust the host.
const maxImageSize = 512 << 20

// readFile reads a kernel or initrd named by flag, bounded by maxImageSize.
func readFile(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", flag, path)
	}
	if st.Size() > maxImageSize {
		return nil, fmt.Errorf("%s %s: %d bytes is larger than the %d MiB limit", flag, path, st.Size(), maxImageSize>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImageSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s: file is empty", flag, path)
	}
	return b, nil
}
