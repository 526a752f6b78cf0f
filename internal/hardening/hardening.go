// Package hardening audits an ELF binary for the exploit mitigations govmm
// is required to ship with: PIE, full RELRO, a non-executable stack, no
// writable+executable segments, and (advisory) the C-level stack protector
// and FORTIFY_SOURCE.
//
// The binaries inspected are the host's own, trusted files (the govmm
// binary itself, or host tools audited by `govmm check`), so parsing them
// with debug/elf is acceptable; this package must never be pointed at
// guest-supplied data.
package hardening

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Severity says whether a failed property makes the whole report fail.
type Severity int

const (
	// Required properties must all hold for Report.OK to be true.
	Required Severity = iota
	// Advisory properties are reported (as WARN) but do not fail the report.
	Advisory
)

func (s Severity) String() string {
	switch s {
	case Required:
		return "required"
	case Advisory:
		return "advisory"
	default:
		return fmt.Sprintf("Severity(%d)", int(s))
	}
}

// Property names, as used in Entry.Name.
const (
	PropPIE            = "PIE"
	PropRELRO          = "Full RELRO"
	PropNXStack        = "NX stack"
	PropNoRWX          = "No RWX segments"
	PropStackProtector = "Stack protector"
	PropFortify        = "FORTIFY_SOURCE"
)

// Entry is the result for one property.
type Entry struct {
	Name     string
	Severity Severity
	OK       bool
	Detail   string
}

// Status is the short status shown in the table: "ok", "FAIL" (a Required
// entry that does not hold) or "WARN" (an Advisory entry that does not hold).
func (e Entry) Status() string {
	switch {
	case e.OK:
		return "ok"
	case e.Severity == Required:
		return "FAIL"
	default:
		return "WARN"
	}
}

// Report is the result of checking one binary: one Entry per property, in
// a fixed order (PIE, Full RELRO, NX stack, No RWX segments, Stack
// protector, FORTIFY_SOURCE).
type Report struct {
	// Path is the file checked; empty when Check was called directly.
	Path    string
	Entries []Entry
}

// OK reports whether every Required entry holds. Advisory entries are
// ignored. A report with no entries is not OK.
func (r Report) OK() bool {
	if len(r.Entries) == 0 {
		return false
	}
	for _, e := range r.Entries {
		if e.Severity == Required && !e.OK {
			return false
		}
	}
	return true
}

// Entry returns the entry with the given name.
func (r Report) Entry(name string) (Entry, bool) {
	for _, e := range r.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Failures returns the Required entries that do not hold.
func (r Report) Failures() []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Severity == Required && !e.OK {
			out = append(out, e)
		}
	}
	return out
}

// String renders the report as a table, for example:
//
//	hardening report for bin/govmm: PASS
//	PROPERTY         STATUS  SEVERITY  DETAIL
//	PIE              ok      required  ET_DYN with PT_INTERP and DF_1_PIE
//	...
func (r Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	if r.Path != "" {
		fmt.Fprintf(&b, "hardening report for %s: %s\n", r.Path, verdict)
	} else {
		fmt.Fprintf(&b, "hardening report: %s\n", verdict)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROPERTY\tSTATUS\tSEVERITY\tDETAIL")
	for _, e := range r.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Status(), e.Severity, e.Detail)
	}
	tw.Flush()
	return b.String()
}

// CheckFile opens the ELF file at path and checks it. The error is non-nil
// only if the file cannot be opened or is not a parseable ELF file.
func CheckFile(path string) (Report, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Report{Path: path}, fmt.Errorf("hardening: %w", err)
	}
	defer f.Close()
	r := Check(f)
	r.Path = path
	return r, nil
}

// Check inspects an already-opened ELF file. Problems reading optional
// parts of the file (the dynamic section, symbol tables) are reflected in
// the entries' details rather than returned.
func Check(f *elf.File) Report {
	info := inspect(f)
	return Report{Entries: []Entry{
		checkPIE(f, info),
		checkRELRO(info),
		checkNXStack(f),
		checkNoRWX(f),
		checkStackProtector(info),
		checkFortify(info),
	}}
}

// elfInfo is what the individual checks need beyond the program headers.
type elfInfo struct {
	hasInterp bool
	hasDynSeg bool
	hasRELRO  bool

	dyn    map[elf.DynTag][]uint64
	dynErr error

	// imports are the undefined (imported) dynamic symbols.
	imports map[string]bool
	// staticSyms are the .symtab names; consulted only for binaries with
	// no dynamic symbols (static links), where libc is linked in.
	staticSyms map[string]bool
	symErr     error
}

func (i *elfInfo) dynFlag(tag elf.DynTag, bit uint64) bool {
	for _, v := range i.dyn[tag] {
		if v&bit != 0 {
			return true
		}
	}
	return false
}

func inspect(f *elf.File) *elfInfo {
	info := &elfInfo{dyn: map[elf.DynTag][]uint64{}}
	var dynProg *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			info.hasInterp = true
		case elf.PT_DYNAMIC:
			info.hasDynSeg = true
			dynProg = p
		case elf.PT_GNU_RELRO:
			info.hasRELRO = true
		}
	}
	if dynProg != nil {
		// Read the dynamic table through the program header rather than
		// the .dynamic section so that binaries with stripped section
		// headers are still handled.
		info.dyn, info.dynErr = readDynamic(f, io.NewSectionReader(dynProg, 0, int64(dynProg.Filesz)))
	}

	syms, err := f.DynamicSymbols()
	switch {
	case err == nil:
		info.imports = make(map[string]bool, len(syms))
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF && s.Name != "" {
				info.imports[s.Name] = true
			}
		}
	case errors.Is(err, elf.ErrNoSymbols):
	default:
		info.symErr = err
	}
	if len(info.imports) == 0 && info.symErr == nil {
		// Nothing imported: a static (or static-pie) link. Any C code,
		// libc included, is then inside the binary, so fall back to the
		// full symbol table, if it has not been stripped.
		st, err := f.Symbols()
		switch {
		case err == nil:
			info.staticSyms = make(map[string]bool, len(st))
			for _, s := range st {
				info.staticSyms[s.Name] = true
			}
		case !errors.Is(err, elf.ErrNoSymbols):
			info.symErr = err
		}
	}
	return info
}

// readDynamic decodes an ELF dynamic table (an array of d_tag/d_val pairs
// terminated by DT_NULL).
func readDynamic(f *elf.File, r io.Reader) (map[elf.DynTag][]uint64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	bo := f.ByteOrder
	if bo == nil {
		bo = binary.LittleEndian
	}
	out := map[elf.DynTag][]uint64{}
	rd := bytes.NewReader(data)
	for {
		var tag int64
		var val uint64
		switch f.Class {
		case elf.ELFCLASS64:
			var e [2]uint64
			if err := binary.Read(rd, bo, &e); err != nil {
				return out, nil // truncated table: use what we have
			}
			tag, val = int64(e[0]), e[1]
		case elf.ELFCLASS32:
			var e [2]uint32
			if err := binary.Read(rd, bo, &e); err != nil {
				return out, nil
			}
			tag, val = int64(int32(e[0])), uint64(e[1])
		default:
			return nil, fmt.Errorf("unsupported ELF class %v", f.Class)
		}
		if elf.DynTag(tag) == elf.DT_NULL {
			return out, nil
		}
		out[elf.DynTag(tag)] = append(out[elf.DynTag(tag)], val)
	}
}

// checkPIE decides whether the file is a position-independent executable.
//
// Telling a PIE from a shared library: both are ET_DYN, so e_type alone
// cannot distinguish them. Modern linkers (GNU ld >= 2.26, gold, lld, and
// Go's own linker) mark executables linked with -pie by setting DF_1_PIE in
// DT_FLAGS_1; that is the authoritative signal and also covers static-pie
// executables, which have no interpreter. Older toolchains do not set
// DF_1_PIE, so we also accept a PT_INTERP segment: an object that asks
// the kernel to load a dynamic linker is meant to be executed. Ordinary
// shared libraries have neither. (A few libraries such as glibc's libc.so.6
// carry a PT_INTERP so they can be run directly; for this audit such a file
// counts as a PIE, which is correct in the sense that matters: it is
// loaded at a random address.)
func checkPIE(f *elf.File, info *elfInfo) Entry {
	e := Entry{Name: PropPIE, Severity: Required}
	switch f.Type {
	case elf.ET_EXEC:
		e.Detail = "ET_EXEC: linked at a fixed address, not position independent (build with -buildmode=pie / -pie)"
		return e
	case elf.ET_DYN:
	default:
		e.Detail = fmt.Sprintf("%v: not an executable", f.Type)
		return e
	}
	pieFlag := info.dynFlag(elf.DT_FLAGS_1, uint64(elf.DF_1_PIE))
	switch {
	case pieFlag && info.hasInterp:
		e.OK, e.Detail = true, "ET_DYN with PT_INTERP and DF_1_PIE"
	case pieFlag:
		e.OK, e.Detail = true, "ET_DYN with DF_1_PIE (static-pie, no PT_INTERP)"
	case info.hasInterp:
		e.OK, e.Detail = true, "ET_DYN with PT_INTERP (no DF_1_PIE: older linker)"
	default:
		e.Detail = "ET_DYN without PT_INTERP or DF_1_PIE: a shared library, not a PIE executable"
	}
	return e
}

func checkRELRO(info *elfInfo) Entry {
	e := Entry{Name: PropRELRO, Severity: Required}
	var how []string
	if info.dynFlag(elf.DT_FLAGS, uint64(elf.DF_BIND_NOW)) {
		how = append(how, "DF_BIND_NOW")
	}
	if info.dynFlag(elf.DT_FLAGS_1, uint64(elf.DF_1_NOW)) {
		how = append(how, "DF_1_NOW")
	}
	if _, ok := info.dyn[elf.DT_BIND_NOW]; ok {
		how = append(how, "DT_BIND_NOW")
	}
	bindNow := len(how) > 0
	switch {
	case info.hasRELRO && bindNow:
		e.OK = true
		e.Detail = "PT_GNU_RELRO and BIND_NOW (" + strings.Join(how, ", ") + ")"
	case info.hasRELRO:
		e.Detail = "partial RELRO: PT_GNU_RELRO but no BIND_NOW, so the GOT stays writable (link with -z now)"
	case bindNow:
		e.Detail = "BIND_NOW but no PT_GNU_RELRO segment (link with -z relro)"
	case !info.hasDynSeg:
		e.Detail = "no PT_GNU_RELRO and no dynamic section (static, non-PIE link)"
	default:
		e.Detail = "no PT_GNU_RELRO and no BIND_NOW (link with -z relro -z now)"
	}
	if info.dynErr != nil {
		e.Detail += fmt.Sprintf(" [dynamic table unreadable: %v]", info.dynErr)
	}
	return e
}

func checkNXStack(f *elf.File) Entry {
	e := Entry{Name: PropNXStack, Severity: Required}
	for _, p := range f.Progs {
		if p.Type != elf.PT_GNU_STACK {
			continue
		}
		if p.Flags&elf.PF_X != 0 {
			e.Detail = fmt.Sprintf("PT_GNU_STACK is executable (%s)", flagString(p.Flags))
		} else {
			e.OK = true
			e.Detail = fmt.Sprintf("PT_GNU_STACK %s", flagString(p.Flags))
		}
		return e
	}
	e.Detail = "no PT_GNU_STACK header: the stack may default to executable (link with -z noexecstack)"
	return e
}

func checkNoRWX(f *elf.File) Entry {
	e := Entry{Name: PropNoRWX, Severity: Required}
	var bad []string
	n := 0
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		n++
		if p.Flags&elf.PF_W != 0 && p.Flags&elf.PF_X != 0 {
			bad = append(bad, fmt.Sprintf("#%d vaddr=%#x %s", i, p.Vaddr, flagString(p.Flags)))
		}
	}
	switch {
	case len(bad) > 0:
		e.Detail = "writable and executable PT_LOAD segment(s): " + strings.Join(bad, "; ")
	case n == 0:
		e.OK = true
		e.Detail = "no PT_LOAD segments"
	default:
		e.OK = true
		e.Detail = fmt.Sprintf("%d PT_LOAD segments, none both writable and executable", n)
	}
	return e
}

// hasSym reports whether name is referenced: imported through the dynamic
// symbol table, or, for binaries without dynamic symbols, present in the
// static symbol table.
func (i *elfInfo) hasSym(name string) bool {
	return i.imports[name] || i.staticSyms[name]
}

// noSymbols reports that nothing is known about the binary's symbols.
func (i *elfInfo) noSymbols() bool {
	return len(i.imports) == 0 && i.staticSyms == nil
}

func (i *elfInfo) linksC() bool {
	// A binary that imports any dynamic symbol links against a C library
	// (for Go binaries this is at least runtime/cgo's pthread calls).
	// A static binary with a symbol table links C if it contains libc's
	// entry points.
	return len(i.imports) > 0 || i.staticSyms["__libc_start_main"] || i.staticSyms["__libc_start_call_main"]
}

func checkStackProtector(info *elfInfo) Entry {
	e := Entry{Name: PropStackProtector, Severity: Advisory}
	switch {
	case info.hasSym("__stack_chk_fail"):
		e.OK, e.Detail = true, "__stack_chk_fail referenced (C code built with -fstack-protector)"
	case info.symErr != nil:
		e.Detail = fmt.Sprintf("symbol table unreadable: %v", info.symErr)
	case info.noSymbols():
		e.Detail = "unknown: no imported symbols and no symbol table (static, stripped binary)"
	case !info.linksC():
		e.OK = true
		e.Detail = "n/a: no C code linked; Go code has its own stack-bound checks"
	default:
		e.Detail = "__stack_chk_fail not referenced: the linked C code was not built with -fstack-protector or has no protectable functions " +
			"(Go's runtime/cgo is always built with -fno-stack-protector); Go code has its own stack-bound checks"
	}
	return e
}

func checkFortify(info *elfInfo) Entry {
	e := Entry{Name: PropFortify, Severity: Advisory}
	var chk []string
	for _, m := range []map[string]bool{info.imports, info.staticSyms} {
		for name := range m {
			if strings.HasPrefix(name, "__") && strings.HasSuffix(name, "_chk") {
				chk = append(chk, name)
			}
		}
	}
	sort.Strings(chk)
	switch {
	case len(chk) > 0:
		e.OK = true
		e.Detail = "fortified calls: " + strings.Join(chk, ", ")
	case info.symErr != nil:
		e.Detail = fmt.Sprintf("symbol table unreadable: %v", info.symErr)
	case info.noSymbols():
		e.Detail = "unknown: no imported symbols and no symbol table (static, stripped binary)"
	case !info.linksC():
		e.OK = true
		e.Detail = "n/a: no C code linked"
	default:
		e.Detail = "no __*_chk symbols referenced: C code not built with -D_FORTIFY_SOURCE (needs -O1 or higher), or it calls nothing fortifiable"
	}
	return e
}

func flagString(f elf.ProgFlag) string {
	b := []byte("---")
	if f&elf.PF_R != 0 {
		b[0] = 'R'
	}
	if f&elf.PF_W != 0 {
		b[1] = 'W'
	}
	if f&elf.PF_X != 0 {
		b[2] = 'E'
	}
	return string(b)
}
