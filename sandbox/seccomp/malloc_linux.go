//go:build linux && amd64

package seccomp

/*
#include <malloc.h>

// govmm_tame_malloc turns off the lazy paths of glibc's malloc that open
// files, which no seccomp program allows. In a cgo binary every new Go
// thread allocates and frees a start-up record with glibc's malloc
// (runtime/cgo: _cgo_thread_start, then threadentry), and glibc's
// per-thread arenas have two one-time look-ups: arena_get2 counts the CPUs
// with get_nprocs, which opens /sys/devices/system/cpu/online (and, when
// that is denied, /proc/stat), when the tenth arena is needed (arena_test
// is 8 on 64-bit), and shrink_heap reads /proc/sys/vm/overcommit_memory
// the first time a thread heap shrinks. M_ARENA_MAX = 1 means no new
// thread arena is ever created, so get_nprocs is never needed; a trim
// threshold above a thread heap's maximum size (64 MiB) means no heap is
// ever shrunk. C allocations after set-up are a few dozen bytes per new
// thread, so neither setting costs anything measurable.
//
// It is an ELF constructor, run while the process has one thread. Set
// later (it once was, in InstallProcess), a thread that had read
// arena_max = 0 could be between that read and get_nprocs' open at the
// moment TSYNC put the baseline on it, and be killed: seen about one run
// in 300 under Landlock, whose EACCES makes get_nprocs try a second file.
__attribute__((constructor)) static void govmm_tame_malloc(void) {
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
*/
import "C"
