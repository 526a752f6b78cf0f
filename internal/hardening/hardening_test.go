package hardening

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmm/govmm/internal/buildflags"
)

const goMain = `package main

import "fmt"

func main() { fmt.Println("hello") }
`

// cgoMain has a C function with a local array and fortifiable calls, so a
// hardened build must reference __stack_chk_fail and __*_chk.
const cgoMain = `package main

/*
#include <stdio.h>
#include <string.h>

static int greet(const char *who) {
	char buf[64];
	strcpy(buf, "hello, ");
	strncat(buf, who, sizeof buf - strlen(buf) - 1);
	return printf("%s\n", buf);
}
*/
import "C"

import "os"

func main() {
	name := "world"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	cs := C.CString(name)
	C.greet(cs)
}
`

const cMain = `#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
	char buf[64];
	strcpy(buf, argv[0]);
	snprintf(buf, sizeof buf, "%s", argv[argc - 1]);
	puts(buf);
	return 0;
}
`

// rwxAsm adds a section that is allocated, writable and executable, which
// forces the linker to emit an RWX PT_LOAD segment.
const rwxAsm = `.section .rwxsec,"awx",@progbits
.globl rwxblob
rwxblob: .long 1
.section .note.GNU-stack,"",@progbits
`

func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	return p
}

// buildGo writes src as the main package of a fresh module and builds it
// with the go command, extra environment env and go arguments
// args(output). It returns the path of the binary.
func buildGo(t *testing.T, src string, env []string, args func(out string) []string) string {
	t.Helper()
	gobin := goTool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hardeningtest\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(gobin, args(out)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	cmd.Env = append(cmd.Env, env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return out
}

func buildHardenedGo(t *testing.T, src string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("gcc not found (the hardened build links externally): %v", err)
	}
	return buildGo(t, src, buildflags.Env(), func(out string) []string {
		return buildflags.BuildArgs(out, ".")
	})
}

// buildC compiles C (and optionally assembly) sources with gcc.
func buildC(t *testing.T, srcs map[string]string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "prog")
	args := append([]string{}, flags...)
	args = append(args, "-o", out)
	for name, src := range srcs {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

func check(t *testing.T, path string) Report {
	t.Helper()
	r, err := CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r)
	return r
}

// expect asserts the OK state of each named entry.
func expect(t *testing.T, r Report, want map[string]bool) {
	t.Helper()
	for name, ok := range want {
		e, found := r.Entry(name)
		if !found {
			t.Errorf("no %q entry in report", name)
			continue
		}
		if e.OK != ok {
			t.Errorf("%s: OK = %v, want %v (%s)", name, e.OK, ok, e.Detail)
		}
	}
}

var allRequired = map[string]bool{PropPIE: true, PropRELRO: true, PropNXStack: true, PropNoRWX: true}

func TestHardenedGo(t *testing.T) {
	t.Parallel()
	r := check(t, buildHardenedGo(t, goMain))
	if !r.OK() {
		t.Errorf("hardened pure-Go binary fails: %v", r.Failures())
	}
	expect(t, r, allRequired)
}

func TestHardenedCgo(t *testing.T) {
	t.Parallel()
	r := check(t, buildHardenedGo(t, cgoMain))
	if !r.OK() {
		t.Errorf("hardened cgo binary fails: %v", r.Failures())
	}
	expect(t, r, allRequired)
	expect(t, r, map[string]bool{PropStackProtector: true, PropFortify: true})
}

// TestNonPIEGo shows the check can fail: a default internal-linked,
// non-PIE Go executable has neither PIE nor RELRO.
func TestNonPIEGo(t *testing.T) {
	t.Parallel()
	bin := buildGo(t, goMain, []string{"CGO_ENABLED=0"}, func(out string) []string {
		return []string{"build", "-buildmode=exe", "-ldflags=-linkmode=internal", "-o", out, "."}
	})
	r := check(t, bin)
	if r.OK() {
		t.Error("non-PIE binary passes the hardening check")
	}
	expect(t, r, map[string]bool{PropPIE: false, PropRELRO: false, PropNoRWX: true})
	if len(r.Failures()) < 2 {
		t.Errorf("Failures() = %v, want at least PIE and RELRO", r.Failures())
	}
}

func TestCBinaries(t *testing.T) {
	hardened := []string{"-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-fPIE", "-pie",
		"-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"}
	tests := []struct {
		name   string
		srcs   map[string]string
		flags  []string
		ok     bool
		want   map[string]bool
		detail map[string]string // entry name -> substring of Detail
	}{
		{
			name:  "hardened",
			srcs:  map[string]string{"main.c": cMain},
			flags: hardened,
			ok:    true,
			want: map[string]bool{PropPIE: true, PropRELRO: true, PropNXStack: true, PropNoRWX: true,
				PropStackProtector: true, PropFortify: true},
		},
		{
			name:  "insecure",
			srcs:  map[string]string{"main.c": cMain},
			flags: []string{"-O0", "-fno-stack-protector", "-U_FORTIFY_SOURCE", "-no-pie", "-z", "execstack", "-Wl,-z,norelro"},
			want: map[string]bool{PropPIE: false, PropRELRO: false, PropNXStack: false, PropNoRWX: true,
				PropStackProtector: false, PropFortify: false},
			detail: map[string]string{PropPIE: "ET_EXEC", PropNXStack: "executable"},
		},
		{
			name:   "partial RELRO",
			srcs:   map[string]string{"main.c": cMain},
			flags:  []string{"-O2", "-fPIE", "-pie", "-Wl,-z,relro", "-Wl,-z,lazy", "-Wl,-z,noexecstack"},
			want:   map[string]bool{PropPIE: true, PropRELRO: false, PropNXStack: true},
			detail: map[string]string{PropRELRO: "partial"},
		},
		{
			name:   "RWX segment",
			srcs:   map[string]string{"main.c": cMain, "rwx.s": rwxAsm},
			flags:  hardened,
			want:   map[string]bool{PropPIE: true, PropRELRO: true, PropNXStack: true, PropNoRWX: false},
			detail: map[string]string{PropNoRWX: "RWE"},
		},
		{
			name:   "shared library",
			srcs:   map[string]string{"lib.c": "int f(int x) { return x + 1; }\n"},
			flags:  []string{"-O2", "-fPIC", "-shared", "-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"},
			want:   map[string]bool{PropPIE: false, PropRELRO: true, PropNXStack: true},
			detail: map[string]string{PropPIE: "shared library"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := check(t, buildC(t, tc.srcs, tc.flags...))
			if r.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v", r.OK(), tc.ok)
			}
			expect(t, r, tc.want)
			for name, sub := range tc.detail {
				if e, _ := r.Entry(name); !strings.Contains(e.Detail, sub) {
					t.Errorf("%s detail %q does not mention %q", name, e.Detail, sub)
				}
			}
		})
	}
}

func TestCheckFileErrors(t *testing.T) {
	if _, err := CheckFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("CheckFile(missing file) succeeded")
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckFile(notELF); err == nil {
		t.Error("CheckFile(shell script) succeeded")
	}
}

func TestReport(t *testing.T) {
	if (Report{}).OK() {
		t.Error("empty report is OK")
	}
	r := Report{Path: "bin/x", Entries: []Entry{
		{Name: PropPIE, Severity: Required, OK: true, Detail: "fine"},
		{Name: PropStackProtector, Severity: Advisory, OK: false, Detail: "meh"},
	}}
	if !r.OK() {
		t.Error("failing advisory entry makes the report fail")
	}
	s := r.String()
	for _, want := range []string{"bin/x: PASS", "PROPERTY", "STATUS", "SEVERITY", "DETAIL", "WARN", "advisory", "meh"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	r.Entries = append(r.Entries, Entry{Name: PropRELRO, Severity: Required, OK: false, Detail: "partial"})
	if r.OK() {
		t.Error("failing required entry does not fail the report")
	}
	if f := r.Failures(); len(f) != 1 || f[0].Name != PropRELRO {
		t.Errorf("Failures() = %v", f)
	}
	if s := r.String(); !strings.Contains(s, "bin/x: FAIL") || !strings.Contains(s, "FAIL    required  partial") {
		t.Errorf("String() of failing report:\n%s", s)
	}
	if _, ok := r.Entry("nonexistent"); ok {
		t.Error("Entry(nonexistent) found")
	}
}

// TestSelf checks that Check copes with the test binary itself, whatever
// mode it was built in.
func TestSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	r := check(t, exe)
	if len(r.Entries) != 6 {
		t.Errorf("got %d entries, want 6", len(r.Entries))
	}
}
