//go:build linux && cgo

// Landlock applied before the Go runtime exists. Landlock domains are per
// thread and inherited by threads created later; a cgo Go binary cannot
// reach its existing threads on kernels without
// LANDLOCK_RESTRICT_SELF_TSYNC, but an ELF constructor runs while the
// process has exactly one thread, so every Go thread is born restricted.
// ExecRestricted re-executes the binary with the rules in the environment;
// this constructor applies them. See landlock_exec_linux.go.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/landlock.h>

// Debian 12's kernel headers (6.1) predate ABI 3; the value is fixed ABI.
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#include "landlock_ctor_linux.h"

// 0: not asked; 1: restricted; negative: -errno of the failed step, with
// govmm_landlock_ctor_step naming it and govmm_landlock_ctor_path the path.
int govmm_landlock_ctor_state = 0;
const char *govmm_landlock_ctor_step = "";
char govmm_landlock_ctor_path[4096];

static int fail(const char *step, const char *path) {
	govmm_landlock_ctor_state = errno ? -errno : -EINVAL;
	govmm_landlock_ctor_step = step;
	if (path)
		strncpy(govmm_landlock_ctor_path, path, sizeof govmm_landlock_ctor_path - 1);
	return -1;
}

// add_rules adds one path_beneath rule per newline-separated path in list.
static int add_rules(int rs, const char *list, __u64 access) {
	if (list == NULL || *list == '\0')
		return 0;
	char buf[4096];
	const char *p = list;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n == 0 || n >= sizeof buf) {
			errno = ENAMETOOLONG;
			return fail("path", p);
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		int fd = open(buf, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return fail("open", buf);
		struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
		long r = syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
		int saved = errno;
		close(fd);
		errno = saved;
		if (r != 0)
			return fail("add_rule", buf);
		p += n;
		if (*p == '\n')
			p++;
	}
	return 0;
}

__attribute__((constructor)) static void govmm_landlock_ctor(void) {
	const char *ro = getenv(GOVMM_LANDLOCK_RO_ENV);
	const char *rw = getenv(GOVMM_LANDLOCK_RW_ENV);
	if (ro == NULL && rw == NULL)
		return;
	errno = 0;
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		fail("abi", NULL);
		return;
	}
	// The same rights as restrict() in landlock_linux.go: every ABI 1
	// file-system right, REFER (never granted) from ABI 2 and TRUNCATE
	// from ABI 3. Device ioctls are left to seccomp.
	__u64 handled = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;
	__u64 file_rw = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE;
	if (abi >= 2)
		handled |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3) {
		handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
		file_rw |= LANDLOCK_ACCESS_FS_TRUNCATE;
	}
	struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
	int rs = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
	if (rs < 0) {
		fail("create_ruleset", NULL);
		return;
	}
	if (add_rules(rs, ro, LANDLOCK_ACCESS_FS_READ_FILE) != 0 || add_rules(rs, rw, file_rw) != 0) {
		close(rs);
		return;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		close(rs);
		fail("no_new_privs", NULL);
		return;
	}
	if (syscall(SYS_landlock_restrict_self, rs, 0) != 0) {
		close(rs);
		fail("restrict_self", NULL);
		return;
	}
	close(rs);
	unsetenv(GOVMM_LANDLOCK_RO_ENV);
	unsetenv(GOVMM_LANDLOCK_RW_ENV);
	govmm_landlock_ctor_state = 1;
}
