package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmm/govmm/sandbox/audit"
)

type kvmInfo struct{ mode fs.FileMode }

func (k kvmInfo) Name() string       { return "kvm" }
func (k kvmInfo) Size() int64        { return 0 }
func (k kvmInfo) Mode() fs.FileMode  { return k.mode }
func (k kvmInfo) ModTime() time.Time { return time.Time{} }
func (k kvmInfo) IsDir() bool        { return false }
func (k kvmInfo) Sys() any           { return &syscall.Stat_t{Uid: 0, Gid: 0} }

// fakeCheckHost builds a host on which every check passes, except that
// aslr is written as kernel.randomize_va_space (0 makes GOVMM-ASLR-1 FAIL).
func fakeCheckHost(t *testing.T, aslr string) audit.Host {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found (needed for a hardened binary to audit): %v", err)
	}
	root := t.TempDir()
	files := map[string]string{
		"/sys/kernel/security/lsm":                    "capability,landlock\n",
		"/sys/kernel/mm/ksm/run":                      "0\n",
		"/proc/sys/vm/overcommit_memory":              "0\n",
		"/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
		"/proc/self/mountinfo":                        "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		"/sys/fs/cgroup/cgroup.controllers":           "cpu memory pids\n",
		"/proc/sys/user/max_user_namespaces":          "0\n",
		"/proc/sys/kernel/randomize_va_space":         aslr + "\n",
		"/src/p.c":                                    "int main(void){return 0;}\n",
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(root, "govmm")
	if b, err := exec.Command(gcc, "-fPIE", "-pie", "-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack",
		"-o", exe, filepath.Join(root, "src/p.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return audit.Host{
		Root:       root,
		Executable: exe,
		Stat: func(string) (fs.FileInfo, error) {
			return kvmInfo{fs.ModeDevice | fs.ModeCharDevice | 0o600}, nil
		},
	}
}

func TestCmdCheck(t *testing.T) {
	cases := []struct {
		name     string
		aslr     string
		json     bool
		wantCode int
		wantFail string // ID expected to FAIL; all others PASS
	}{
		{"table all pass", "2", false, 0, ""},
		{"json all pass", "2", true, 0, ""},
		{"table with fail", "0", false, 1, "GOVMM-ASLR-1"},
		{"json with fail", "0", true, 1, "GOVMM-ASLR-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := checkHost
			checkHost = fakeCheckHost(t, c.aslr)
			defer func() { checkHost = old }()
			var args []string
			if c.json {
				args = []string{"--json"}
			}
			var stdout, stderr bytes.Buffer
			if code := cmdCheck(args, &stdout, &stderr); code != c.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, c.wantCode, stderr.String())
			}
			got := map[string]string{} // ID -> status
			if c.json {
				var rs []audit.Result
				if err := json.Unmarshal(stdout.Bytes(), &rs); err != nil {
					t.Fatalf("output is not a JSON array of results: %v\n%s", err, stdout.String())
				}
				for _, r := range rs {
					got[r.ID] = string(r.Status)
					if r.Reference == "" || r.Title == "" || r.Detail == "" || r.Fix == "" {
						t.Errorf("incomplete JSON result %+v", r)
					}
				}
				// The field names are the interface: pin them.
				for _, key := range []string{`"id"`, `"reference"`, `"title"`, `"status"`, `"detail"`, `"fix"`} {
					if !strings.Contains(stdout.String(), key) {
						t.Errorf("JSON lacks field %s", key)
					}
				}
			} else {
				for _, line := range strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n") {
					f := strings.Fields(line)
					if len(f) < 4 || !strings.Contains(line, " — ") || !strings.Contains(line, "; fix: ") {
						t.Fatalf("malformed table line %q", line)
					}
					got[f[1]] = f[0]
				}
			}
			if len(got) != len(audit.Checks) {
				t.Errorf("%d checks reported, want %d:\n%s", len(got), len(audit.Checks), stdout.String())
			}
			for id, st := range got {
				want := "PASS"
				if id == c.wantFail {
					want = "FAIL"
				}
				if st != want {
					t.Errorf("%s: %s, want %s\n%s", id, st, want, stdout.String())
				}
			}
		})
	}
}

func TestCmdCheckUsage(t *testing.T) {
	cases := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"--jsn"}, 2, "flag provided but not defined: -jsn"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--json=maybe"}, 2, "invalid boolean value"},
		{[]string{"-h"}, 0, ""},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := cmdCheck(c.args, &stdout, &stderr)
		if code != c.wantCode {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.wantCode)
		}
		if c.wantErr == "" {
			if stderr.Len() != 0 || !strings.Contains(stdout.String(), "usage: govmm check") {
				t.Errorf("%v: stdout %q stderr %q, want usage on stdout", c.args, stdout.String(), stderr.String())
			}
			continue
		}
		if s := stderr.String(); !strings.Contains(s, c.wantErr) || strings.Count(s, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%v: stderr %q stdout %q, want one line containing %q", c.args, s, stdout.String(), c.wantErr)
		}
	}
}
