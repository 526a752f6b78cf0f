package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"
)

// Binaries built once for all tests: a static Go program (what users pack)
// and, where gcc exists, a dynamically linked C program (what they must be
// told to rebuild).
var (
	staticBin  string
	dynamicBin string
	dynamicErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "initrd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if staticBin, err = buildStatic(dir); err != nil {
			fmt.Fprintln(os.Stderr, "building the static test binary:", err)
			return 1
		}
		dynamicBin, dynamicErr = buildDynamic(dir)
		return m.Run()
	}()
	os.Exit(code)
}

func buildStatic(dir string) (string, error) {
	src := filepath.Join(dir, "static")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":  "module initrdtest\n\ngo 1.21\n",
		"main.go": "package main\n\nfunc main() { println(\"hello from /init\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, "static-init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

func buildDynamic(dir string) (string, error) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "dyn.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n"), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "dynamic-init")
	if b, err := exec.Command(gcc, "-o", out, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

// readArchive returns every record before the trailer.
func readArchive(t *testing.T, b []byte) []cpio.Record {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("reading the archive back: %v", err)
	}
	return recs
}

func content(t *testing.T, r cpio.Record) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatalf("%s: reading contents: %v", r.Name, err)
	}
	return b
}

func writeFile(t *testing.T, dir, name, body string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's perm is filtered by the umask; the tests want it exact.
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildContents(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "app.conf", "answer=42\n", 0o640)
	script := writeFile(t, dir, "run.sh", "#!/bin/sh\necho hi\n", 0o755)

	var buf bytes.Buffer
	err := Build(&buf, staticBin, []FileSpec{
		{HostPath: conf, GuestPath: "/etc/app/app.conf"},
		{HostPath: script, GuestPath: "/bin/run.sh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := readArchive(t, buf.Bytes())

	type want struct {
		mode           uint64
		rmajor, rminor uint64
		body           []byte // nil: not checked
	}
	initBytes, err := os.ReadFile(staticBin)
	if err != nil {
		t.Fatal(err)
	}
	dir755 := uint64(cpio.S_IFDIR | 0o755)
	wants := map[string]want{
		".":                {mode: dir755},
		"bin":              {mode: dir755},
		"bin/run.sh":       {mode: cpio.S_IFREG | 0o755, body: []byte("#!/bin/sh\necho hi\n")},
		"dev":              {mode: dir755},
		"dev/console":      {mode: cpio.S_IFCHR | 0o600, rmajor: 5, rminor: 1},
		"dev/null":         {mode: cpio.S_IFCHR | 0o666, rmajor: 1, rminor: 3},
		"etc":              {mode: dir755},
		"etc/app":          {mode: dir755},
		"etc/app/app.conf": {mode: cpio.S_IFREG | 0o640, body: []byte("answer=42\n")},
		"init":             {mode: cpio.S_IFREG | 0o755, body: initBytes},
		"proc":             {mode: dir755},
		"sys":              {mode: dir755},
		"tmp":              {mode: dir755},
	}

	// The reader turns the trailer into the end of the records, so look
	// for it in the bytes: the last name, followed only by padding.
	if !bytes.HasSuffix(bytes.TrimRight(buf.Bytes(), "\x00"), []byte(cpio.Trailer)) {
		t.Fatalf("archive does not end with the %s record", cpio.Trailer)
	}
	seen := map[string]bool{}
	inodes := map[uint64]string{}
	for _, r := range recs {
		w, ok := wants[r.Name]
		if !ok {
			t.Errorf("unexpected record %q", r.Name)
			continue
		}
		if seen[r.Name] {
			t.Errorf("record %q appears twice", r.Name)
		}
		// The kernel drops a file whose directory does not exist yet, so
		// every parent must come earlier in the archive.
		if parent := path.Dir(r.Name); r.Name != "." && !seen[parent] {
			t.Errorf("%q comes before its directory %q", r.Name, parent)
		}
		seen[r.Name] = true
		if r.Mode != w.mode {
			t.Errorf("%s: mode %#o, want %#o", r.Name, r.Mode, w.mode)
		}
		if r.Rmajor != w.rmajor || r.Rminor != w.rminor {
			t.Errorf("%s: device %d:%d, want %d:%d", r.Name, r.Rmajor, r.Rminor, w.rmajor, w.rminor)
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want all 0", r.Name, r.MTime, r.UID, r.GID)
		}
		if prev, dup := inodes[r.Ino]; dup || r.Ino == 0 {
			t.Errorf("%s: inode %d is zero or shared with %q", r.Name, r.Ino, prev)
		}
		inodes[r.Ino] = r.Name
		if w.body != nil && !bytes.Equal(content(t, r), w.body) {
			t.Errorf("%s: contents differ from the host file (%d bytes, want %d)", r.Name, r.FileSize, len(w.body))
		}
	}
	for name := range wants {
		if !seen[name] {
			t.Errorf("record %q missing", name)
		}
	}
}

func TestBuildDeterministic(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "b.conf", "b\n", 0o644)
	other := writeFile(t, dir, "a.conf", "a\n", 0o600)
	build := func(files []FileSpec) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := Build(&buf, staticBin, files); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first := build([]FileSpec{{conf, "/z/b.conf"}, {other, "/a.conf"}})
	// Touch the inputs between builds: host timestamps must not leak into
	// the archive. And give the files in the other order: the archive is
	// sorted, so the order of the flags must not matter either.
	future := time.Now().Add(48 * time.Hour)
	for _, p := range []string{conf, other} {
		if err := os.Chtimes(p, future, future); err != nil {
			t.Fatal(err)
		}
	}
	second := build([]FileSpec{{other, "/a.conf"}, {conf, "/z/b.conf"}})
	if !bytes.Equal(first, second) {
		t.Fatalf("two builds of the same input differ (%d and %d bytes)", len(first), len(second))
	}
	// And the check above can fail: different contents give different bytes.
	if err := os.WriteFile(conf, []byte("c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if third := build([]FileSpec{{conf, "/z/b.conf"}, {other, "/a.conf"}}); bytes.Equal(first, third) {
		t.Fatal("changing an input file did not change the archive")
	}
}

func TestBuildRejects(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "app.conf", "x\n", 0o644)
	script := writeFile(t, dir, "init.sh", "#!/bin/sh\nexec /bin/sh\n", 0o755)
	short := writeFile(t, dir, "short", "\x7fELF\x02\x01\x01", 0o755)

	// An aarch64 binary: the static Go binary with e_machine (offset 18)
	// changed, everything else intact.
	arm, err := os.ReadFile(staticBin)
	if err != nil {
		t.Fatal(err)
	}
	arm[18], arm[19] = 183, 0 // EM_AARCH64, little-endian
	armPath := filepath.Join(dir, "arm-init")
	if err := os.WriteFile(armPath, arm, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		init  string
		files []FileSpec
		want  string
	}{
		{"missing init", filepath.Join(dir, "nope"), nil, "nope: no such file"},
		{"init is a directory", dir, nil, "is a directory"},
		{"init is a script", script, nil, "not an ELF executable"},
		{"init is truncated", short, nil, "malformed ELF"},
		{"init is for another machine", armPath, nil, "EM_AARCH64"},
		{"dynamic init", dynamicBin, nil, "is dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2); build it with CGO_ENABLED=0 or -static"},
		{"relative guest path", staticBin, []FileSpec{{conf, "etc/app.conf"}}, `"etc/app.conf" is not absolute`},
		{"dot-dot", staticBin, []FileSpec{{conf, "/etc/../app.conf"}}, `contains ".."`},
		{"unclean", staticBin, []FileSpec{{conf, "/etc//app.conf"}}, `not clean (want "/etc/app.conf")`},
		{"root", staticBin, []FileSpec{{conf, "/"}}, "root directory"},
		{"too long", staticBin, []FileSpec{{conf, "/" + strings.Repeat("a", maxPath)}}, "limit is 4095"},
		{"duplicate", staticBin, []FileSpec{{conf, "/etc/a"}, {script, "/etc/a"}}, "/etc/a is named by two --file flags"},
		{"over /init", staticBin, []FileSpec{{conf, "/init"}}, "/init is the init binary"},
		{"over /dev/console", staticBin, []FileSpec{{conf, "/dev/console"}}, "always has"},
		{"over /dev", staticBin, []FileSpec{{conf, "/dev"}}, "always has"},
		{"file and dir", staticBin, []FileSpec{{conf, "/a/b"}, {conf, "/a"}}, "/a is a file in the initramfs"},
		{"under /init", staticBin, []FileSpec{{conf, "/init/x"}}, "/init is a file in the initramfs"},
		{"missing extra", staticBin, []FileSpec{{filepath.Join(dir, "gone"), "/gone"}}, "gone: no such file"},
		{"extra is a directory", staticBin, []FileSpec{{dir, "/d"}}, "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.init == dynamicBin && dynamicErr != nil {
				t.Skipf("no dynamic test binary: %v", dynamicErr)
			}
			var buf bytes.Buffer
			err := Build(&buf, tc.init, tc.files)
			if err == nil {
				t.Fatalf("Build succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("error %q is not ErrInput", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the input was rejected", buf.Len())
			}
		})
	}
}

func TestParseFileSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    FileSpec
		wantErr string
	}{
		{in: "app.conf:/etc/app.conf", want: FileSpec{"app.conf", "/etc/app.conf"}},
		{in: "/host/x:/x", want: FileSpec{"/host/x", "/x"}},
		{in: "c:/dir:with:colons:/bin/tool", want: FileSpec{"c:/dir:with:colons", "/bin/tool"}},
		{in: "app.conf", wantErr: "want HOST:GUEST"},
		{in: ":/etc/x", wantErr: "empty host path"},
		{in: "x:", wantErr: "empty guest path"},
		{in: "x:etc/x", wantErr: "not absolute"},
		{in: "x:/etc/../x", wantErr: `contains ".."`},
		{in: "x:/etc/", wantErr: "not clean"},
		{in: "x:/a\x00b", wantErr: "NUL"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFileSpec(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInput) {
					t.Fatalf("ParseFileSpec(%q) = %+v, %v; want an ErrInput containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseFileSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseFileSpec: --file is user input. Whatever it is, parsing returns
// either a spec that puts the two halves back together into the input and
// whose guest path Build accepts, or a one-line ErrInput. Seeds are in
// testdata/fuzz/FuzzParseFileSpec.
func FuzzParseFileSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFileSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("ParseFileSpec(%q): error %q is not ErrInput", s, err)
			}
			if strings.ContainsAny(err.Error(), "\n\x00") {
				t.Fatalf("ParseFileSpec(%q): error %q spans lines or carries a NUL", s, err)
			}
			return
		}
		if fs.HostPath == "" || fs.HostPath+":"+fs.GuestPath != s {
			t.Fatalf("ParseFileSpec(%q) = %+v: halves do not rebuild the input", s, fs)
		}
		if strings.Contains(fs.GuestPath, ":") {
			t.Fatalf("ParseFileSpec(%q): guest path %q has a colon", s, fs.GuestPath)
		}
		if err := CheckGuestPath(fs.GuestPath); err != nil {
			t.Fatalf("ParseFileSpec(%q) accepted guest path %q that CheckGuestPath rejects: %v", s, fs.GuestPath, err)
		}
		if path.Clean(fs.GuestPath) != fs.GuestPath || !path.IsAbs(fs.GuestPath) || fs.GuestPath == "/" {
			t.Fatalf("ParseFileSpec(%q): guest path %q is not an absolute clean file path", s, fs.GuestPath)
		}
	})
}
