//go:build !linux

package cgroup

import (
	"errors"
	"fmt"
	"time"
)

var errUnsupported = fmt.Errorf("%w: %w", ErrUnsupported, errors.ErrUnsupported)

// New fails: cgroups exist only on Linux.
func New(name string, r Resources) (*Group, error) { return nil, errUnsupported }

// Open fails: cgroups exist only on Linux.
func Open(name string) (*Group, error) { return nil, errUnsupported }

// AddProcess fails: cgroups exist only on Linux.
func (g *Group) AddProcess(pid int) error { return errUnsupported }

// AddVCPUThreads fails: cgroups exist only on Linux.
func (g *Group) AddVCPUThreads(tids []int) error { return errUnsupported }

// CPUUsage fails: cgroups exist only on Linux.
func (g *Group) CPUUsage() (total, vcpu time.Duration, err error) { return 0, 0, errUnsupported }

// Remove fails: cgroups exist only on Linux.
func (g *Group) Remove() error { return errUnsupported }
