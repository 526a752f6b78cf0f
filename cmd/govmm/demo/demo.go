// Package demo embeds the demo guest that `govmm run` boots when no
// --kernel is given. demo.elf is built from tests/guest/demo.c by
// `make -C tests/guest demo`; README.md beside it says how, and how its
// reproducibility is checked.
package demo

import _ "embed"

// ELF is the demo guest, a PVH ELF image.
//
//go:embed demo.elf
var ELF []byte
