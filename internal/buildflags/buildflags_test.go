package buildflags

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSpec pins the flags to the documented product build command line.
func TestSpec(t *testing.T) {
	wantEnv := []string{
		"CGO_ENABLED=1",
		"CGO_CFLAGS=-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE",
		"CGO_LDFLAGS=-Wl,-z,relro,-z,now -Wl,-z,noexecstack",
	}
	if got := Env(); !slices.Equal(got, wantEnv) {
		t.Errorf("Env() = %q, want %q", got, wantEnv)
	}
	wantArgs := []string{
		"build", "-trimpath", "-buildmode=pie",
		"-ldflags", "-linkmode=external -extldflags '-Wl,-z,relro,-z,now -Wl,-z,noexecstack'",
		"-o", "bin/govmm", "./cmd/govmm",
	}
	if got := BuildArgs("bin/govmm", "./cmd/govmm"); !slices.Equal(got, wantArgs) {
		t.Errorf("BuildArgs() = %q, want %q", got, wantArgs)
	}
	// BuildArgs must not alias between calls.
	a := BuildArgs("x", "p1")
	b := BuildArgs("y", "p2")
	if a[len(a)-1] != "p1" || b[len(b)-1] != "p2" {
		t.Errorf("BuildArgs results alias: %q %q", a, b)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "module github.com/govmm/govmm") {
		t.Errorf("ModuleRoot found %s, whose go.mod is not govmm's", root)
	}
	if _, err := ModuleRoot(t.TempDir()); err == nil {
		// Only fails if some ancestor of the temp dir has a go.mod,
		// which would be odd but is not this package's bug.
		t.Logf("note: a go.mod exists above %s", os.TempDir())
	}
}

// makefileVars are the Makefile variables that must equal buildflags'
// constants. required ones must be defined if the Makefile exists.
var makefileVars = []struct {
	name     string
	want     string
	required bool
}{
	{"CGO_CFLAGS_HARDEN", CgoCFlags, true},
	{"HARDEN_LDFLAGS", HardenLDFlags, true},
	{"CGO_LDFLAGS_HARDEN", CgoLDFlags, false},
	{"HARDEN_CFLAGS", CgoCFlags, false},
}

// TestMakefileMatches cross-checks the lead's Makefile against this
// package, so `make build` and the Go tests cannot drift apart.
func TestMakefileMatches(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "Makefile")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("skipping Makefile cross-check: %s does not exist yet", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	vars := parseMakeVars(string(data))

	known := map[string]bool{}
	for _, v := range makefileVars {
		known[v.name] = true
		raw, ok := vars[v.name]
		if !ok {
			if v.required {
				t.Errorf("%s does not define %s (want %q)", path, v.name, v.want)
			}
			continue
		}
		got := normalize(expand(raw, vars, 0))
		if got != normalize(v.want) {
			t.Errorf("Makefile %s = %q, buildflags has %q", v.name, got, v.want)
		} else {
			t.Logf("Makefile %s matches: %q", v.name, got)
		}
	}
	for name, raw := range vars {
		if strings.Contains(name, "HARDEN") && !known[name] {
			t.Logf("Makefile defines %s = %q (not cross-checked)", name, expand(raw, vars, 0))
		}
	}

	// The build recipe must use the same go build switches.
	text := expand(joinContinuations(string(data)), vars, 0)
	for _, want := range []string{"-trimpath", "-buildmode=" + BuildMode, "-linkmode=external", "-extldflags"} {
		if !strings.Contains(text, want) {
			t.Errorf("Makefile (after variable expansion) never mentions %q", want)
		}
	}
}

func TestParseMakeVars(t *testing.T) {
	mk := "# comment\n" +
		"CGO_CFLAGS_HARDEN := -O2 \\\n\t-fPIE   # trailing comment\n" +
		"HARDEN_LDFLAGS = -Wl,-z,relro,-z,now\n" +
		"export CGO_LDFLAGS_HARDEN ?= $(HARDEN_LDFLAGS) -Wl,-z,noexecstack\n" +
		"CGO_CFLAGS_HARDEN ?= ignored\n" +
		"HARDEN_LDFLAGS += -Wl,-z,now\n" +
		"build:\n\tFOO=bar go build\n"
	vars := parseMakeVars(mk)
	if got := normalize(vars["CGO_CFLAGS_HARDEN"]); got != "-O2 -fPIE" {
		t.Errorf("CGO_CFLAGS_HARDEN = %q", got)
	}
	if got := normalize(expand(vars["CGO_LDFLAGS_HARDEN"], vars, 0)); got != "-Wl,-z,relro,-z,now -Wl,-z,now -Wl,-z,noexecstack" {
		t.Errorf("CGO_LDFLAGS_HARDEN = %q", got)
	}
	if _, ok := vars["FOO"]; ok {
		t.Error("recipe line parsed as a variable")
	}
}

func joinContinuations(s string) string {
	return strings.ReplaceAll(s, "\\\n", " ")
}

var assignRE = regexp.MustCompile(`^(?:(?:export|override)\s+)*([A-Za-z0-9_.-]+)\s*(::=|:=|\?=|\+=|=)\s*(.*)$`)

// parseMakeVars extracts simple variable assignments from a Makefile. It
// understands line continuations, comments, export/override and the
// assignment operators, which is all the hardening variables need.
func parseMakeVars(s string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(joinContinuations(s), "\n") {
		if strings.HasPrefix(line, "\t") {
			continue // recipe
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		m := assignRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		name, op, val := m[1], m[2], strings.TrimSpace(m[3])
		switch op {
		case "+=":
			vars[name] = strings.TrimSpace(vars[name] + " " + val)
		case "?=":
			if _, ok := vars[name]; !ok {
				vars[name] = val
			}
		default:
			vars[name] = val
		}
	}
	return vars
}

var refRE = regexp.MustCompile(`\$[({]([A-Za-z0-9_.-]+)[)}]`)

// expand substitutes $(VAR) and ${VAR} references to variables defined in
// the Makefile; other references are left as they are.
func expand(s string, vars map[string]string, depth int) string {
	if depth > 10 {
		return s
	}
	return refRE.ReplaceAllStringFunc(s, func(ref string) string {
		name := refRE.FindStringSubmatch(ref)[1]
		if v, ok := vars[name]; ok {
			return expand(v, vars, depth+1)
		}
		return ref
	})
}

func normalize(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
