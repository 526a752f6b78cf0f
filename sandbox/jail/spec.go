package jail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Defaults for the zero values of Spec.
const (
	DefaultBaseDir = "/srv/govmm"
	DefaultUID     = 65534
	DefaultGID     = 65534

	// DefaultNOFILE bounds the open files of the jailed VMM: its disks,
	// /dev/kvm, one fd per vCPU, ioeventfds/irqfds (a handful per device),
	// epoll and the Go runtime's own. 4096 is far above what a VM needs.
	DefaultNOFILE = 4096

	// DefaultNPROC is RLIMIT_NPROC of the jailed VMM. The kernel counts
	// every task (thread, not process) of the real uid, system-wide and
	// across all VMs sharing that uid, against it when a thread is created.
	// The Go runtime creates OS threads on demand (GOMAXPROCS running ones,
	// one per blocking syscall, one per locked vCPU or device thread) and
	// aborts the whole process ("failed to create new OS thread") when
	// clone fails with EAGAIN. So a tight value turns "many VMs share the
	// default uid 65534" into random VMM crashes. The precise per-VM bound
	// is the pids cgroup (cmd/govmm gives each VM 512 tasks); this limit is
	// the backstop for a jail without a cgroup, sized for ~100 VMs sharing
	// uid 65534. Give each VM its own uid to make it tight.
	DefaultNPROC = 4096

	// DefaultFSIZE is the floor of the default RLIMIT_FSIZE; the default is
	// the larger of this and the largest writable bind (see Rlimits).
	DefaultFSIZE = 1 << 30

	// Unlimited is RLIM_INFINITY, for Rlimits fields.
	Unlimited = ^uint64(0)

	// MinRlimit is the smallest NOFILE or NPROC accepted: below it the Go
	// runtime cannot even start its threads, or a VMM its devices.
	MinRlimit = 64

	// MaxBinds and MaxExtraFiles bound a Spec.
	MaxBinds      = 64
	MaxExtraFiles = 64

	// MaxVCPUThreads bounds a thread report (vmm.MaxCPUs is far lower).
	MaxVCPUThreads = 1024

	maxJailPath  = 256
	maxJailDepth = 16
)

// ValidateID checks a VM id: 1 to 64 characters from [a-zA-Z0-9-]. The id
// names the per-VM directory, so nothing else (no '/', no '.') may pass.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("jail: VM id is empty (want [a-zA-Z0-9-]{1,64})")
	}
	if len(id) > 64 {
		return fmt.Errorf("jail: VM id is %d characters long (want [a-zA-Z0-9-]{1,64})", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("jail: VM id %q has the character %q at %d (want [a-zA-Z0-9-]{1,64})", id, c, i)
		}
	}
	return nil
}

// Bind is one host file made visible inside the jail.
type Bind struct {
	// Host is the file on the host: a regular file or a block device.
	// Directories are refused: the jail holds files, not trees.
	Host string
	// Jail is where it appears inside the jail: absolute, clean, no "."
	// or ".." components, components from [A-Za-z0-9._-], not "/", at most
	// 256 bytes and 16 components deep.
	Jail string
	// ReadOnly makes the bind mount read-only (kernel, initrd, ro disks).
	ReadOnly bool
}

// ValidateJailPath checks a path inside the jail (Bind.Jail).
func ValidateJailPath(p string) error {
	if p == "" {
		return errors.New("jail: empty path inside the jail")
	}
	if len(p) > maxJailPath {
		return fmt.Errorf("jail: path %.40q... inside the jail is longer than %d bytes", p, maxJailPath)
	}
	if p[0] != '/' {
		return fmt.Errorf("jail: path %q inside the jail is not absolute", p)
	}
	if p == "/" {
		return errors.New("jail: \"/\" cannot be a bind target (it is the jail's root)")
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("jail: path %q inside the jail is not clean (want %q)", p, filepath.Clean(p))
	}
	comps := strings.Split(p[1:], "/")
	if len(comps) > maxJailDepth {
		return fmt.Errorf("jail: path %q inside the jail is more than %d components deep", p, maxJailDepth)
	}
	for _, c := range comps {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("jail: path %q inside the jail has a %q component", p, c)
		}
		for i := 0; i < len(c); i++ {
			b := c[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
				return fmt.Errorf("jail: path %q inside the jail has the character %q (want [A-Za-z0-9._-] in each component)", p, b)
			}
		}
	}
	return nil
}

// Rlimits are the resource limits of the jailed VMM; each is set as both
// soft and hard limit. A zero field takes its default: NOFILE
// DefaultNOFILE, NPROC DefaultNPROC, FSIZE the larger of DefaultFSIZE
// (1 GiB) and the size of the largest writable bind, so that no disk
// write is refused but nothing else (a console log passed as an extra
// file, say) grows without bound. Use Unlimited for no limit. Past FSIZE a
// write fails with EFBIG (the Go runtime ignores SIGXFSZ).
type Rlimits struct {
	NOFILE, FSIZE, NPROC uint64
}

// Spec describes one jailed (or, with Isolate false, merely supervised)
// VMM child.
type Spec struct {
	// ID names the VM ([a-zA-Z0-9-]{1,64}, see ValidateID).
	ID string
	// Isolate turns the jail on: namespaces, the per-VM root, binds,
	// device nodes, rlimits, the uid/gid drop, no capabilities and
	// no_new_privs. Without it Start only supervises: it re-executes the
	// binary with the same protocol (OnStart before the child runs,
	// OnVCPUThreads, Pdeathsig, fd numbering) and the child keeps the
	// caller's credentials, root and environment; BaseDir, UID, GID,
	// KVM, TUN and Rlimits are then ignored and Binds must be empty.
	Isolate bool
	// BaseDir holds BaseDir/ID/root, the per-VM root (default
	// DefaultBaseDir). It must be absolute, owned by root and not
	// writable by group or others; it is created (0700) if missing.
	BaseDir string
	// UID and GID the VMM runs as (default 65534; 0 means the default, and
	// root is never allowed).
	UID, GID int
	// NetNS, if set, is a network namespace file (/run/netns/NAME,
	// /proc/PID/ns/net) the child joins.
	NetNS string
	// Binds are the only files inside the jail besides the device nodes.
	Binds []Bind
	// KVM and TUN create /dev/kvm (10:232) and /dev/net/tun (10:200),
	// mode 0600, owned by UID:GID.
	KVM, TUN bool
	// Rlimits of the jailed process; see Rlimits for the defaults.
	Rlimits Rlimits
	// Args is the child's argv without argv[0]. The binary is the running
	// one (/proc/self/exe at Start).
	Args []string
	// Stdin, Stdout, Stderr of the child, as in exec.Cmd (nil: /dev/null).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ExtraFiles are passed to the child as fds 4, 5, ... (fd 3 is the
	// jail's control socket). Opened by the caller, so the child needs no
	// path to them (a console log, a listening API socket).
	ExtraFiles []*os.File
	// OnStart runs after the child process exists (pid is its pid on the
	// host) and before it does anything but start the Go runtime and wait
	// for the go-ahead: put it into its cgroup here. An error kills it.
	OnStart func(pid int) error
	// OnVCPUThreads receives the host TIDs of the vCPU threads the child
	// reported with Child.ReportThreads (at most once). Its error is
	// returned to the child's ReportThreads.
	OnVCPUThreads func(hostTIDs []int) error
	// BeforeExec, if set, runs on the thread that forks the child, just
	// before the fork: per-thread exec attributes set there (an SELinux
	// exec label, an AppArmor profile to change to on exec, both written
	// to /proc/thread-self/attr/exec) apply to the child and to nothing
	// else, because that thread is never reused. An error aborts Start.
	BeforeExec func() error
}

// Exported fd numbers of the child.
const (
	// ControlFD is the child's end of the jail control socket.
	ControlFD = 3
	// FirstExtraFD is the child's fd of Spec.ExtraFiles[0].
	FirstExtraFD = 4
)

// wireVersion is bumped whenever wireSpec changes incompatibly. Parent and
// child are the same binary, so a mismatch means a corrupted channel.
const wireVersion = 1

// wireSpec is what the parent tells the child, as one JSON message on the
// control socket. Everything in it was validated and resolved by Start
// (absolute host paths, defaults filled in); the child validates it again.
type wireSpec struct {
	Version    int
	ID         string
	Isolate    bool
	Root       string `json:",omitempty"` // host path of BaseDir/ID/root
	UID, GID   int
	Binds      []wireBind `json:",omitempty"`
	KVM, TUN   bool
	Rlimits    Rlimits
	ExtraFiles int
}

type wireBind struct {
	Host, Jail string
	ReadOnly   bool
	// Block: the host file is a block device (its mount keeps dev access).
	Block bool
}

func (w *wireSpec) encode() ([]byte, error) { return json.Marshal(w) }

// decodeWireSpec parses and validates a wireSpec: unknown fields, trailing
// data and anything Start would not have produced are errors.
func decodeWireSpec(b []byte) (*wireSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireSpec
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("jail: decoding the spec: %w", err)
	}
	if dec.More() {
		return nil, errors.New("jail: decoding the spec: trailing data")
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	return &w, nil
}

func (w *wireSpec) validate() error {
	if w.Version != wireVersion {
		return fmt.Errorf("jail: spec version %d, want %d", w.Version, wireVersion)
	}
	if err := ValidateID(w.ID); err != nil {
		return err
	}
	if w.ExtraFiles < 0 || w.ExtraFiles > MaxExtraFiles {
		return fmt.Errorf("jail: %d extra files (at most %d)", w.ExtraFiles, MaxExtraFiles)
	}
	if !w.Isolate {
		if len(w.Binds) != 0 || w.Root != "" {
			return errors.New("jail: binds and a root need Isolate")
		}
		return nil
	}
	if !filepath.IsAbs(w.Root) || filepath.Clean(w.Root) != w.Root {
		return fmt.Errorf("jail: root %q is not an absolute clean path", w.Root)
	}
	if w.UID <= 0 || w.UID >= 1<<32-1 || w.GID <= 0 || w.GID >= 1<<32-1 {
		return fmt.Errorf("jail: uid %d gid %d: want 1..4294967294 each", w.UID, w.GID)
	}
	if len(w.Binds) > MaxBinds {
		return fmt.Errorf("jail: %d binds (at most %d)", len(w.Binds), MaxBinds)
	}
	var targets []string
	for _, b := range w.Binds {
		if !filepath.IsAbs(b.Host) || strings.IndexByte(b.Host, 0) >= 0 {
			return fmt.Errorf("jail: bind source %q is not an absolute path", b.Host)
		}
		if err := ValidateJailPath(b.Jail); err != nil {
			return err
		}
		targets = append(targets, b.Jail)
	}
	if w.KVM {
		targets = append(targets, kvmPath)
	}
	if w.TUN {
		targets = append(targets, tunPath)
	}
	if err := checkConflicts(targets); err != nil {
		return err
	}
	r := w.Rlimits
	if r.NOFILE < MinRlimit || r.NPROC < MinRlimit || r.FSIZE == 0 {
		return fmt.Errorf("jail: rlimits %+v: NOFILE and NPROC must be at least %d, FSIZE positive", r, MinRlimit)
	}
	if r.NOFILE != Unlimited && r.NOFILE < uint64(FirstExtraFD+w.ExtraFiles+MinRlimit) {
		return fmt.Errorf("jail: RLIMIT_NOFILE %d leaves too little room beside %d extra files", r.NOFILE, w.ExtraFiles)
	}
	return nil
}

const (
	kvmPath = "/dev/kvm"
	tunPath = "/dev/net/tun"
)

// checkConflicts refuses two targets that are the same path or where one
// would have to be a directory holding the other (a file cannot be both).
func checkConflicts(targets []string) error {
	for i, a := range targets {
		for j, b := range targets {
			if i == j {
				continue
			}
			if a == b {
				return fmt.Errorf("jail: %s is bound twice", a)
			}
			if strings.HasPrefix(b, a+"/") {
				return fmt.Errorf("jail: %s would have to be both a file and the directory holding %s", a, b)
			}
		}
	}
	return nil
}
