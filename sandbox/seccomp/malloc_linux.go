//go:build linux && amd64

package seccomp

/*
#include <malloc.h>

// The same settings as tameMalloc, applied by an ELF constructor while the
// process still has one thread: a thread that read arena_max before a
// later mallopt could otherwise be inside arena_get2, between that read
// and get_nprocs' open of /sys/devices/system/cpu/online (and, when that
// is denied, /proc/stat), at the moment InstallProcess's TSYNC puts the
// baseline on it, and be killed for the open. That race was seen (about
// one run in 300, under Landlock, whose EACCES makes get_nprocs try a
// second file). Set before any thread exists, no thread ever takes that
// path.
__attribute__((constructor)) static void govmm_tame_malloc(void) {
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
*/
import "C"

import "errors"

// tameMalloc turns off the lazy paths of glibc's malloc that open files.
// In a cgo binary every new Go thread allocates and frees a start-up
// record with glibc's malloc (runtime/cgo: _cgo_thread_start, then
// threadentry), and glibc's per-thread arenas have two one-time look-ups:
// arena_get2 counts the CPUs with get_nprocs, which opens
// /sys/devices/system/cpu/online, when the ninth arena is needed
// (arena_test is 8 on 64-bit), and shrink_heap reads
// /proc/sys/vm/overcommit_memory the first time a thread heap shrinks.
// Under the baseline either openat kills the process, and the first one
// does so reliably once a VMM has more than eight threads (the runtime
// tests of this package found it).
//
// M_ARENA_MAX = 1 means no new thread arena is ever created (new threads
// share the arenas that exist), so get_nprocs is never needed; a trim
// threshold above a thread heap's maximum size (64 MiB) means no heap is
// ever shrunk. The main arena grows with brk, or mmap without PROT_EXEC,
// both allowed. C allocations after set-up are a few dozen bytes per new
// thread, so neither setting costs anything measurable.
func tameMalloc() error {
	if C.mallopt(C.M_ARENA_MAX, 1) != 1 {
		return errors.New("mallopt(M_ARENA_MAX, 1) failed")
	}
	if C.mallopt(C.M_TRIM_THRESHOLD, 1<<30) != 1 {
		return errors.New("mallopt(M_TRIM_THRESHOLD) failed")
	}
	return nil
}
