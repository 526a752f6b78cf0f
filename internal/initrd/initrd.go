// Package initrd packs a static binary, and optionally a few more files,
// into an uncompressed newc initramfs with the binary as /init: the
// smallest userspace a govmm guest kernel can boot. The archive format is
// written by u-root's cpio package; this package decides what goes in,
// checks the user's input, and makes the output reproducible.
package initrd

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/u-root/mkuimage/cpio"
)

// ErrInput marks an error in what the user asked for (a missing file, a
// dynamic binary, a bad guest path), as opposed to an I/O failure while
// writing. The CLI maps it to the usage exit code.
var ErrInput = errors.New("bad input")

// FileSpec is one extra file: HostPath is copied to GuestPath, with the
// host file's permission bits.
type FileSpec struct {
	HostPath  string
	GuestPath string
}

// maxPath is the kernel's PATH_MAX: init/initramfs.c skips a record whose
// name (with its NUL) is longer, so such a file would silently be missing.
const maxPath = 4096

// baseDirs are created whatever the user adds: the mount points init needs
// for devtmpfs, proc and sysfs, and a /tmp, so that a minimal init does not
// have to create them before it can mount anything.
var baseDirs = []string{"/", "/dev", "/proc", "/sys", "/tmp"}

// Device nodes present before devtmpfs is mounted. The kernel opens
// /dev/console for init's stdin/stdout/stderr right after unpacking the
// initramfs; without this node init starts with no console at all
// ("Warning: unable to open an initial console"). /dev/null is there for
// programs that redirect to it before devtmpfs is up.
// The permissions are the ones devtmpfs gives them: the console is root's,
// /dev/null everyone's.
var devNodes = []struct {
	name         string
	perm         uint64
	major, minor uint64
}{
	{"/dev/console", 0o600, 5, 1},
	{"/dev/null", 0o666, 1, 3},
}

// inputError is a user's mistake: its text is the whole message (no
// "bad input:" prefix), and errors.Is(err, ErrInput) finds it through any
// wrapping.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInput }

func inputErr(format string, args ...any) error {
	return &inputError{fmt.Sprintf(format, args...)}
}

// CheckGuestPath reports whether p can name a file in the initramfs: an
// absolute, clean path, no "..", not the root, no NUL, and short enough for
// the kernel to unpack it.
func CheckGuestPath(p string) error {
	switch {
	case p == "":
		return inputErr("empty guest path")
	case strings.IndexByte(p, 0) >= 0:
		return inputErr("guest path %q contains a NUL byte", p)
	case !strings.HasPrefix(p, "/"):
		return inputErr("guest path %q is not absolute (want %q)", p, "/"+p)
	case p == "/":
		return inputErr("guest path \"/\" is the root directory, not a file")
	}
	for _, el := range strings.Split(p[1:], "/") {
		if el == ".." {
			return inputErr("guest path %q contains \"..\"", p)
		}
	}
	if c := path.Clean(p); c != p {
		return inputErr("guest path %q is not clean (want %q)", p, c)
	}
	if len(p) >= maxPath {
		return inputErr("guest path %.40q... is %d bytes; the kernel's limit is %d", p, len(p), maxPath-1)
	}
	return nil
}

// ParseFileSpec parses a --file argument, HOST:GUEST. It splits at the
// last colon, so host paths may contain colons and guest paths may not (a
// guest path is ours to choose; a host path is whatever the file is
// called). Its errors quote the argument but do not name the flag: the
// flag package already does.
func ParseFileSpec(s string) (FileSpec, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return FileSpec{}, inputErr("%q: want HOST:GUEST, e.g. ./app.conf:/etc/app.conf", s)
	}
	fs := FileSpec{HostPath: s[:i], GuestPath: s[i+1:]}
	if fs.HostPath == "" {
		return FileSpec{}, inputErr("%q: empty host path (want HOST:GUEST)", s)
	}
	if err := CheckGuestPath(fs.GuestPath); err != nil {
		return FileSpec{}, fmt.Errorf("%q: %w", s, err)
	}
	return fs, nil
}

// entry is one archive record before it becomes a cpio.Record. Guest
// paths stay absolute here; they lose the leading slash only on the way
// out, because newc names are relative to the root.
type entry struct {
	guest  string
	mode   uint64 // type and permission bits
	rmajor uint64
	rminor uint64
	file   *os.File // regular files only
	size   int64
}

// Build writes a newc initramfs to w: the base directories, the device
// nodes, init as /init (mode 0755), every file in files together with the
// directories above it, and the trailer. Nothing is written unless all of
// the input checks out. The output depends only on the contents and
// permission bits of the input files: every timestamp, owner and device
// number is zero, inode numbers are assigned in order and records are
// sorted by path, so the same input always gives the same bytes.
func Build(w io.Writer, init string, files []FileSpec) error {
	entries := map[string]*entry{}
	defer func() {
		for _, e := range entries {
			if e.file != nil {
				e.file.Close()
			}
		}
	}()
	for _, d := range baseDirs {
		entries[d] = &entry{guest: d, mode: cpio.S_IFDIR | 0o755}
	}
	for _, n := range devNodes {
		entries[n.name] = &entry{guest: n.name, mode: cpio.S_IFCHR | n.perm, rmajor: n.major, rminor: n.minor}
	}

	initFile, initSize, err := openInit(init)
	if err != nil {
		return err
	}
	entries["/init"] = &entry{guest: "/init", mode: cpio.S_IFREG | 0o755, file: initFile, size: initSize}

	// Regular files first, directories second: a file's parents are
	// implied, and an implied parent must not collide with a file the user
	// named (/a and /a/b cannot both be given).
	for _, fs := range files {
		if err := CheckGuestPath(fs.GuestPath); err != nil {
			return fmt.Errorf("--file %q: %w", fs.HostPath+":"+fs.GuestPath, err)
		}
		if prev, ok := entries[fs.GuestPath]; ok {
			what := "is named by two --file flags"
			if prev.file == nil {
				what = "is a directory or device the initramfs always has"
			} else if fs.GuestPath == "/init" {
				what = "is the init binary"
			}
			return inputErr("--file %q: %s %s", fs.HostPath+":"+fs.GuestPath, fs.GuestPath, what)
		}
		f, size, perm, err := openRegular(fs.HostPath)
		if err != nil {
			return fmt.Errorf("--file %q: %w", fs.HostPath+":"+fs.GuestPath, err)
		}
		entries[fs.GuestPath] = &entry{guest: fs.GuestPath, mode: cpio.S_IFREG | perm, file: f, size: size}
	}
	for _, fs := range files {
		for d := path.Dir(fs.GuestPath); d != "/"; d = path.Dir(d) {
			prev, ok := entries[d]
			if !ok {
				entries[d] = &entry{guest: d, mode: cpio.S_IFDIR | 0o755}
				continue
			}
			if prev.mode&cpio.S_IFMT != cpio.S_IFDIR {
				return inputErr("--file %q: %s is a file in the initramfs, so it cannot also be a directory", fs.HostPath+":"+fs.GuestPath, d)
			}
		}
	}

	// Sorted by path, which also puts every directory before what it
	// holds (a parent is a prefix, and a prefix sorts first); the kernel
	// does not create missing parents, it drops the file.
	list := make([]*entry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i].guest, list[j].guest
		if a == "/" || b == "/" {
			return a == "/" && b != "/"
		}
		return a < b
	})

	rw := cpio.Newc.Writer(w)
	for i, e := range list {
		if err := rw.WriteRecord(e.record(uint64(i + 1))); err != nil {
			return fmt.Errorf("writing %s: %w", e.guest, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("writing the cpio trailer: %w", err)
	}
	return nil
}

func (e *entry) record(ino uint64) cpio.Record {
	name := "."
	if e.guest != "/" {
		name = e.guest[1:]
	}
	info := cpio.Info{
		Ino:    ino,
		Mode:   e.mode,
		NLink:  1,
		Rmajor: e.rmajor,
		Rminor: e.rminor,
		Name:   name,
	}
	if e.mode&cpio.S_IFMT == cpio.S_IFDIR {
		info.NLink = 2 // "." and the entry in its parent, as a file system would say
	}
	r := cpio.Record{Info: info}
	if e.file != nil {
		// A SectionReader pins the size we checked: a file that grows while
		// we copy is cut there, and one that shrinks makes the cpio writer
		// fail instead of writing a corrupt archive.
		r.ReaderAt = io.NewSectionReader(e.file, 0, e.size)
		r.FileSize = uint64(e.size)
	}
	return r
}

// openRegular opens a host file that must be a regular file and returns it
// with its size and permission bits.
func openRegular(name string) (*os.File, int64, uint64, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, 0, inputErr("%s: no such file", name)
		}
		return nil, 0, 0, inputErr("%v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, inputErr("%v", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		kind := "not a regular file"
		if st.IsDir() {
			kind = "a directory, not a regular file"
		}
		return nil, 0, 0, inputErr("%s: is %s", name, kind)
	}
	return f, st.Size(), uint64(st.Mode().Perm()), nil
}

// openInit opens the init binary and checks that the guest kernel can run
// it as its first process: a 64-bit x86 ELF executable with no program
// interpreter, because the initramfs holds no dynamic loader or libraries.
// debug/elf is fine here: the file is the user's own, not a guest's.
func openInit(name string) (*os.File, int64, error) {
	f, size, _, err := openRegular(name)
	if err != nil {
		return nil, 0, fmt.Errorf("init %w", err)
	}
	if err := checkStaticELF(f, name); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

func checkStaticELF(f *os.File, name string) error {
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return inputErr("init %s: not an ELF executable (no \\x7fELF magic); /init must be a static binary", name)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return inputErr("init %s: malformed ELF: %v", name, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return inputErr("init %s: a %s %s binary; the guest runs x86-64 (ELFCLASS64, EM_X86_64) binaries only", name, ef.Class, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return inputErr("init %s: ELF type %s is not an executable", name, ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp := "unknown"
		// An interpreter path is a short string; bound the read so a
		// nonsense p_filesz cannot make us allocate much.
		if p.Filesz > 0 && p.Filesz <= maxPath {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
		return inputErr("init %s: is dynamically linked (interpreter %s); build it with CGO_ENABLED=0 or -static", name, interp)
	}
	return nil
}
