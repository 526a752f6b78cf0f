// Package buildflags is the single Go-side definition of the hardened build
// used for the govmm binary. The Makefile's `make build` spells the same
// flags in make syntax; buildflags_test.go cross-checks the two, and the
// hardening tests use HardenedBuild to produce binaries to audit.
//
// The product build is:
//
//	CGO_ENABLED=1 \
//	CGO_CFLAGS="-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE" \
//	CGO_LDFLAGS="-Wl,-z,relro,-z,now -Wl,-z,noexecstack" \
//	go build -trimpath -buildmode=pie \
//	  -ldflags "-linkmode=external -extldflags '-Wl,-z,relro,-z,now -Wl,-z,noexecstack'" \
//	  -o bin/govmm ./cmd/govmm
package buildflags

import (
	"errors"
	"os"
	"path/filepath"
)

const (
	// CgoCFlags is CGO_CFLAGS for the hardened build (Makefile:
	// CGO_CFLAGS_HARDEN).
	CgoCFlags = "-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE"

	// HardenLDFlags are the linker flags for full RELRO and a
	// non-executable stack. They are used both as CGO_LDFLAGS and as the
	// Go linker's -extldflags (Makefile: HARDEN_LDFLAGS).
	HardenLDFlags = "-Wl,-z,relro,-z,now -Wl,-z,noexecstack"

	// CgoLDFlags is CGO_LDFLAGS for the hardened build.
	CgoLDFlags = HardenLDFlags

	// BuildMode is the -buildmode for the hardened build.
	BuildMode = "pie"

	// GoLDFlags is the value of go build's -ldflags: link with the
	// external (C) linker so the hardening flags apply to the final link.
	GoLDFlags = "-linkmode=external -extldflags '" + HardenLDFlags + "'"

	// MainPackage is the import path of the govmm CLI.
	MainPackage = "github.com/govmm/govmm/cmd/govmm"
)

// Env returns the environment variables (KEY=value) that must be added to
// the environment of a hardened `go build`.
func Env() []string {
	return []string{
		"CGO_ENABLED=1",
		"CGO_CFLAGS=" + CgoCFlags,
		"CGO_LDFLAGS=" + CgoLDFlags,
	}
}

// BuildArgs returns the arguments to the go command (starting with "build")
// for a hardened build of pkgs into the file output.
func BuildArgs(output string, pkgs ...string) []string {
	args := []string{
		"build",
		"-trimpath",
		"-buildmode=" + BuildMode,
		"-ldflags", GoLDFlags,
		"-o", output,
	}
	return append(args, pkgs...)
}

// ModuleRoot walks up from dir to the nearest directory containing a
// go.mod file and returns it.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("buildflags: no go.mod found in any parent directory")
		}
		dir = parent
	}
}
