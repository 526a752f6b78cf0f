package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmm/govmm/internal/buildflags"
	"github.com/govmm/govmm/internal/hardening"
)

// TestHardenedBinary audits the real govmm binary: $GOVMM_BIN when set
// (`make check-hardening` and `make test` point it at bin/govmm), else a
// fresh build of cmd/govmm with exactly the product's hardened flags from
// internal/buildflags. Every required property (PIE, full RELRO, NX stack,
// no RWX segments) must hold; advisory ones are only logged.
func TestHardenedBinary(t *testing.T) {
	bin := os.Getenv("GOVMM_BIN")
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("GOVMM_BIN=%s: %v", bin, err)
		}
		t.Logf("checking $GOVMM_BIN=%s", bin)
	} else {
		bin = buildHardenedGovmm(t)
	}
	r, err := hardening.CheckFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r)
	if !r.OK() {
		for _, e := range r.Failures() {
			t.Errorf("%s: %s", e.Name, e.Detail)
		}
		t.Fatalf("%s is not hardened", bin)
	}
}

// buildHardenedGovmm builds cmd/govmm into a temporary directory the way
// `make build` does and returns the binary's path.
func buildHardenedGovmm(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found and GOVMM_BIN not set: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := buildflags.ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "govmm")
	cmd := exec.Command(gobin, buildflags.BuildArgs(out, buildflags.MainPackage)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), buildflags.Env()...)
	t.Logf("building: %s go %s", strings.Join(buildflags.Env(), " "), strings.Join(cmd.Args[1:], " "))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hardened build of %s failed: %v\n%s", buildflags.MainPackage, err, b)
	}
	return out
}
