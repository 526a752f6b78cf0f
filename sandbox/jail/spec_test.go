package jail

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"vm-0123abcd", true},
		{"ABC-def-123", true},
		{"-", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"a/b", false},
		{"..", false},
		{".", false},
		{"a.b", false},
		{"a_b", false},
		{"a b", false},
		{"a\x00b", false},
		{"é", false},
		{"a\n", false},
	} {
		err := ValidateID(c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", c.id, err, c.ok)
		}
	}
}

func TestValidateJailPath(t *testing.T) {
	for _, c := range []struct {
		p  string
		ok bool
	}{
		{"/kernel", true},
		{"/disks/disk0.img", true},
		{"/a-b_c.d", true},
		{"/.hidden", true},
		{"", false},
		{"/", false},
		{"kernel", false},
		{"/a/../b", false},
		{"/..", false},
		{"/a/./b", false},
		{"/a/", false},
		{"//a", false},
		{"/a b", false},
		{"/a\x00", false},
		{"/a:b", false},
		{"/" + strings.Repeat("a/", 16) + "b", false},
		{"/" + strings.Repeat("x", 300), false},
	} {
		err := ValidateJailPath(c.p)
		if (err == nil) != c.ok {
			t.Errorf("ValidateJailPath(%q) = %v, want ok=%v", c.p, err, c.ok)
		}
	}
}

func goodWire() wireSpec {
	return wireSpec{
		Version: wireVersion, ID: "vm-1", Isolate: true, Root: "/srv/govmm/vm-1/root",
		UID: 65534, GID: 65534,
		Binds: []wireBind{{Host: "/images/k", Jail: "/kernel", ReadOnly: true}, {Host: "/dev/sdb", Jail: "/disk0", Block: true}},
		KVM:   true, TUN: true,
		Rlimits:    Rlimits{NOFILE: 4096, FSIZE: 1 << 30, NPROC: 4096},
		ExtraFiles: 2,
	}
}

func TestWireSpecRoundTrip(t *testing.T) {
	w := goodWire()
	b, err := w.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeWireSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, w) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, w)
	}
}

func TestWireSpecRejects(t *testing.T) {
	enc := func(mod func(*wireSpec)) string {
		w := goodWire()
		mod(&w)
		b, err := w.encode()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, json, want string
	}{
		{"unknown field", `{"Version":1,"ID":"a","Bogus":1}`, "unknown field"},
		{"trailing", enc(func(*wireSpec) {}) + `{}`, "trailing"},
		{"not json", `spec`, "decoding"},
		{"version", enc(func(w *wireSpec) { w.Version = 2 }), "version"},
		{"id", enc(func(w *wireSpec) { w.ID = "../x" }), "VM id"},
		{"uid 0", enc(func(w *wireSpec) { w.UID = 0 }), "uid 0"},
		{"relative root", enc(func(w *wireSpec) { w.Root = "srv/x" }), "root"},
		{"relative host", enc(func(w *wireSpec) { w.Binds[0].Host = "k" }), "not an absolute path"},
		{"bad jail path", enc(func(w *wireSpec) { w.Binds[0].Jail = "/a/../../etc" }), "not clean"},
		{"duplicate", enc(func(w *wireSpec) { w.Binds[1].Jail = "/kernel" }), "bound twice"},
		{"over device", enc(func(w *wireSpec) { w.Binds[1].Jail = "/dev/kvm" }), "bound twice"},
		{"under file", enc(func(w *wireSpec) { w.Binds[1].Jail = "/kernel/x" }), "both a file"},
		{"rlimits", enc(func(w *wireSpec) { w.Rlimits.NPROC = 1 }), "at least"},
		{"extra", enc(func(w *wireSpec) { w.ExtraFiles = -1 }), "extra files"},
		{"binds without isolate", enc(func(w *wireSpec) { w.Isolate = false }), "need Isolate"},
	} {
		if _, err := decodeWireSpec([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestParseMsg(t *testing.T) {
	for _, c := range []struct {
		in         string
		kind, body string
		ok         bool
	}{
		{"ready\n", "ready", "", true},
		{"vcpus 1 2\n", "vcpus", "1 2", true},
		{"fail step x: y\n", "fail", "step x: y", true},
		{"", "", "", false},
		{"ready", "", "", false},
		{"a\nb\n", "", "", false},
		{"a\x00\n", "", "", false},
		{strings.Repeat("x", 100) + "\n", "", "", false},
	} {
		k, b, err := parseMsg([]byte(c.in), 64)
		if (err == nil) != c.ok || k != c.kind || b != c.body {
			t.Errorf("parseMsg(%q) = %q %q %v", c.in, k, b, err)
		}
	}
}

func TestParseTIDs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"1", []int{1}},
		{"12 7 4194304", []int{12, 7, 4194304}},
		{"", nil},
		{"0", nil},
		{"01", nil},
		{"-1", nil},
		{"+1", nil},
		{"1  2", nil},
		{" 1", nil},
		{"1 ", nil},
		{"4194305", nil},
		{"99999999", nil},
		{"1 1", nil},
		{"1\t2", nil},
		{"0x10", nil},
		{strings.TrimSpace(strings.Repeat("5 ", 1)) + " " + strings.Repeat("x", 3), nil},
	} {
		got, err := parseTIDs(c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("parseTIDs(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseTIDs(%q) = %v %v, want %v", c.in, got, err, c.want)
		}
	}
	many := strings.TrimSpace(strings.Repeat("1 ", MaxVCPUThreads+1))
	if _, err := parseTIDs(many); err == nil {
		t.Error("parseTIDs accepted more than MaxVCPUThreads ids")
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize("a\nb\x1b[31m\xffc"); got != "a?b?[31m?c" {
		t.Errorf("sanitize: %q", got)
	}
	if got := sanitize(strings.Repeat("x", 5000)); len(got) != maxText+3 {
		t.Errorf("sanitize kept %d bytes", len(got))
	}
}

func FuzzParseTIDs(f *testing.F) {
	f.Add("1 2 3")
	f.Add("01 x")
	f.Fuzz(func(t *testing.T, s string) {
		tids, err := parseTIDs(s)
		if err != nil {
			return
		}
		if formatTIDs(tids) != s {
			t.Errorf("accepted non-canonical %q", s)
		}
		for _, x := range tids {
			if x < 1 || x > pidMax {
				t.Errorf("accepted %d", x)
			}
		}
	})
}

// FuzzParseMsg: the supervisor parses every datagram the (sandboxed) child
// sends. Whatever it accepts is bounded, has no newline or NUL, and is
// exactly what formatMsg would have sent, except that an empty body after a
// space is not canonical.
func FuzzParseMsg(f *testing.F) {
	for _, s := range []string{"ready\n", "vcpus 1 2\n", "fail step x: y\n", "", "ready", "a\nb\n", "a\x00\n", "x \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, body, err := parseMsg(b, 64)
		if err != nil {
			return
		}
		if len(b) > 64 || strings.ContainsAny(kind+body, "\n\x00") {
			t.Fatalf("parseMsg(%q) accepted %q %q", b, kind, body)
		}
		if got := formatMsg(kind, body); string(got) != string(b) && string(b) != kind+" \n" {
			t.Fatalf("parseMsg(%q) = %q %q, which formats as %q", b, kind, body, got)
		}
	})
}
