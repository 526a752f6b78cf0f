package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/govmm/govmm/memory"
)

// Identity-mapping boot page tables for the Linux 64-bit boot protocol,
// which enters with paging on and requires the kernel's init_size range, the
// zero page and the command line to be identity-mapped. Mapping the whole
// first 4 GiB with 2 MiB pages covers all of low RAM and the MMIO hole with
// six pages of tables; the kernel builds its own tables before it touches
// anything above 4 GiB.
//
//	memory.PML4Addr + 0x0000  PML4: entry 0 -> PDPT
//	memory.PML4Addr + 0x1000  PDPT: entries 0..3 -> PD 0..3
//	memory.PML4Addr + 0x2000  PD 0..3, 512 x 2 MiB pages each ([i GiB, i+1 GiB))
//
// The hole is mapped write-back like RAM. Memory types do not matter to
// MMIO that KVM emulates, and Linux remaps devices with its own tables.
const (
	// IdentityMapEnd is the exclusive end of the identity map: 4 GiB.
	IdentityMapEnd = 1 << 32

	PDPTAddr = memory.PML4Addr + memory.PageSize   // the one PDPT
	PDAddr   = memory.PML4Addr + 2*memory.PageSize // first of the four PDs

	// Page-table entry bits (Intel SDM vol. 3, 4.5 "4-Level Paging").
	PTEPresent  = 1 << 0
	PTEWritable = 1 << 1
	PTEHuge     = 1 << 7 // PS: in a PD entry, maps a 2 MiB page

	pageTableBytes = 6 * memory.PageSize
	entriesPerPage = memory.PageSize / 8
	hugePage2M     = 1 << 21
	numPDs         = IdentityMapEnd >> 30
)

// The plan in memory/layout.go must leave room for exactly these tables.
var _ = [1]struct{}{}[memory.PageTablesEnd-memory.PML4Addr-pageTableBytes]

// IdentityPageTables returns the contents of [memory.PML4Addr,
// memory.PageTablesEnd): the identity map of the first 4 GiB. Building the
// whole area in one buffer also clears any stale entry in it.
func IdentityPageTables() []byte {
	b := make([]byte, pageTableBytes)
	put := func(addr uint64, idx int, v uint64) {
		binary.LittleEndian.PutUint64(b[addr-memory.PML4Addr+uint64(idx)*8:], v)
	}
	put(memory.PML4Addr, 0, PDPTAddr|PTEPresent|PTEWritable)
	for i := range numPDs {
		pd := uint64(PDAddr + i*memory.PageSize)
		put(PDPTAddr, i, pd|PTEPresent|PTEWritable)
		for j := range entriesPerPage {
			phys := uint64(i)<<30 | uint64(j)*hugePage2M
			put(pd, j, phys|PTEPresent|PTEWritable|PTEHuge)
		}
	}
	return b
}

// WriteIdentityPageTables writes IdentityPageTables at memory.PML4Addr; the
// vmm then sets CR3 = memory.PML4Addr.
func WriteIdentityPageTables(mem *memory.Guest) error {
	if err := mem.Write(memory.PML4Addr, IdentityPageTables()); err != nil {
		return fmt.Errorf("boot: writing page tables: %w", err)
	}
	return nil
}
