package cgroup

import "errors"

// Sentinel errors. Every error the package returns wraps one of these or an
// errno from the kernel (or both), and names the file or directory it was
// acting on.
var (
	// ErrInvalidName is returned for a group name that is not a relative
	// path of components made of [A-Za-z0-9_-].
	ErrInvalidName = errors.New("cgroup: invalid group name")
	// ErrInvalidWeight is returned for a CPU weight outside 1..10000.
	ErrInvalidWeight = errors.New("cgroup: invalid CPU weight")
	// ErrInvalidCPUMax is returned for a CPU quota or period the kernel
	// would refuse, or a --cpu-max string that does not parse.
	ErrInvalidCPUMax = errors.New("cgroup: invalid CPU max")
	// ErrInvalidLimit is returned for a negative or out-of-range memory or
	// pids limit.
	ErrInvalidLimit = errors.New("cgroup: invalid limit")
	// ErrInvalidPID is returned for a pid or tid that is not positive.
	ErrInvalidPID = errors.New("cgroup: invalid pid or tid")
	// ErrExists is returned by New when a group of that name already exists
	// in some hierarchy: it belongs to another VM (or a VMM that died
	// without removing it), and govmm never shares or adopts one.
	ErrExists = errors.New("cgroup: group already exists")
	// ErrNotExist is returned by Open when the group exists in no hierarchy.
	ErrNotExist = errors.New("cgroup: group does not exist")
	// ErrNoCgroupfs is returned when no cgroup filesystem is mounted.
	ErrNoCgroupfs = errors.New("cgroup: no cgroup filesystem mounted")
	// ErrUnavailable is returned when a controller that a requested limit
	// (or the cpu controller, which every group needs) is not available on
	// any hierarchy.
	ErrUnavailable = errors.New("cgroup: controller not available")
	// ErrRemoved is returned by methods called on a group after Remove.
	ErrRemoved = errors.New("cgroup: group was removed")
	// ErrBusy is returned by Remove when a group directory still could not
	// be removed after retrying: some process or thread is still in it.
	ErrBusy = errors.New("cgroup: group still in use")
	// ErrUnsupported is returned on systems without cgroups (not Linux).
	ErrUnsupported = errors.New("cgroup: not supported on this OS")
)
