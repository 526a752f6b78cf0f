//go:build !govmm_testhooks

package main

import "flag"

// testHook does nothing in a normal build: there is no way to make a
// production govmm issue a syscall on demand.
type testHook struct{}

// testHookOpts holds no flags in a normal build.
type testHookOpts struct{}

func registerTestHookFlags(*flag.FlagSet, *runOptions) {}
func (testHookOpts) testHook() testHook                { return testHook{} }
func (testHook) run(class string)                      {}
func (testHookOpts) testHookArgs() []string            { return nil }
