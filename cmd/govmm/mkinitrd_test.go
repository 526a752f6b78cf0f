package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmm/govmm/vmm"
)

// staticInit builds a tiny static Go program, the kind of /init users pack.
// The go build cache makes every build after the first quick.
func staticInit(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module initdemo\n\ngo 1.21\n",
		"main.go": "package main\n\nfunc main() { println(\"init\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a static init: %v: %s", err, out)
	}
	return bin
}

func TestMkinitrdCLI(t *testing.T) {
	bin := staticInit(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(conf, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initrd.cpio")

	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   string // substring; "" means stderr must be empty
		wantFile bool
	}{
		{"init flag", []string{"-o", out, "--init", bin}, 0, "", true},
		{"init positional with file", []string{"-o", out, "--file", conf + ":/etc/app.conf", bin}, 0, "", true},
		{"no output", []string{bin}, vmm.CodeUsage, "-o FILE is required", false},
		{"no init", []string{"-o", out}, vmm.CodeUsage, "no init binary", false},
		{"init twice", []string{"-o", out, "--init", bin, bin}, vmm.CodeUsage, "init given twice", false},
		{"extra argument", []string{"-o", out, bin, "more"}, vmm.CodeUsage, `unexpected argument "more"`, false},
		{"bad file spec", []string{"-o", out, "--file", conf, bin}, vmm.CodeUsage, "want HOST:GUEST", false},
		{"relative guest", []string{"-o", out, "--file", conf + ":etc/app.conf", bin}, vmm.CodeUsage, "not absolute", false},
		{"missing init", []string{"-o", out, filepath.Join(dir, "nope")}, vmm.CodeUsage, "no such file", false},
		{"not an ELF", []string{"-o", out, conf}, vmm.CodeUsage, "not an ELF executable", false},
		{"output dir missing", []string{"-o", filepath.Join(dir, "no", "such", "dir", "x.cpio"), bin}, vmm.CodeUsage, "cannot create a file in " + filepath.Join(dir, "no", "such", "dir") + ": no such file or directory", false},
		{"help", []string{"-h"}, 0, "usage: govmm mkinitrd", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var stdout, stderr bytes.Buffer
			code := cmdMkinitrd(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if tc.stderr == "" && stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
			if tc.stderr != "" && !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.stderr)
			}
			if code != 0 && strings.Count(strings.TrimSuffix(stderr.String(), "\n"), "\n") != 0 {
				t.Errorf("stderr has more than one line: %q", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			st, err := os.Stat(out)
			if tc.wantFile {
				if err != nil {
					t.Fatalf("no initrd written: %v", err)
				}
				if st.Mode().Perm() != 0o644 || st.Size() == 0 {
					t.Errorf("initrd mode %v size %d, want 0644 and non-empty", st.Mode().Perm(), st.Size())
				}
			} else if err == nil {
				t.Errorf("%s exists after a failed run", out)
			}
			// No temporary file may be left behind, whatever happened.
			if left, _ := filepath.Glob(filepath.Join(dir, ".initrd.cpio.*.tmp")); len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// -o - writes the same bytes as -o FILE, so `govmm mkinitrd -o - x | sha256sum`
// means what it says.
func TestMkinitrdStdout(t *testing.T) {
	bin := staticInit(t)
	out := filepath.Join(t.TempDir(), "initrd.cpio")
	var stdout, stderr bytes.Buffer
	if code := cmdMkinitrd([]string{"-o", out, bin}, &stdout, &stderr); code != 0 {
		t.Fatalf("-o FILE: exit %d: %s", code, stderr.String())
	}
	if code := cmdMkinitrd([]string{"-o", "-", bin}, &stdout, &stderr); code != 0 {
		t.Fatalf("-o -: exit %d: %s", code, stderr.String())
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stdout.Bytes()) {
		t.Fatalf("-o - wrote %d bytes, -o FILE %d; want the same bytes", stdout.Len(), len(file))
	}
	stdout.Reset()
	if code := cmdMkinitrd([]string{"-o", "-", out}, &stdout, &stderr); code != vmm.CodeUsage || stdout.Len() != 0 {
		t.Fatalf("-o - with a non-ELF init: exit %d and %d bytes on stdout, want %d and none", code, stdout.Len(), vmm.CodeUsage)
	}
}
