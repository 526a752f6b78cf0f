//go:build linux && cgo

// The jailed child's only C code: it runs as an ELF constructor, before the
// Go runtime exists, while the process still has exactly one thread. See
// the "inheritable set" part of doc.go for why this cannot be done later
// in Go.

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "ctor_linux.h"

// 0: not a jail child; 1: inheritable and ambient sets cleared; negative:
// -errno of the failed step (Enter reports it).
int govmm_jail_ctor_state = 0;

const char *const govmm_jail_env = GOVMM_JAIL_ENV;

__attribute__((constructor)) static void govmm_jail_ctor(void) {
	const char *v = getenv(GOVMM_JAIL_ENV);
	if (v == NULL || strcmp(v, GOVMM_JAIL_ENV_VALUE) != 0)
		return;
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	memset(&hdr, 0, sizeof hdr);
	memset(data, 0, sizeof data);
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	hdr.pid = 0;
	if (syscall(SYS_capget, &hdr, data) != 0) {
		govmm_jail_ctor_state = -errno;
		return;
	}
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		data[i].inheritable = 0;
	// Lowering the inheritable set needs no privilege. The kernel then also
	// drops every ambient capability (ambient must stay a subset of
	// permitted & inheritable); the explicit clear below says so.
	if (syscall(SYS_capset, &hdr, data) != 0) {
		govmm_jail_ctor_state = -errno;
		return;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
		govmm_jail_ctor_state = -errno;
		return;
	}
	govmm_jail_ctor_state = 1;
}
