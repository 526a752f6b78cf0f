/*
 * govmm guest runtime: PVH entry point.
 *
 * PVH ABI: entered at the XEN_ELFNOTE_PHYS32_ENTRY address in 32-bit flat
 * protected mode, paging off, interrupts off, EBX = physical address of
 * struct hvm_start_info.  Nothing else (stack, GDT contents, EFLAGS beyond
 * IF=0) is relied on: we set up our own stack, GDT and segment registers.
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

	/* ELF note "Xen", type 18, desc = 32-bit physical entry address.
	 * guest.ld puts this section in a PT_NOTE segment. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 2f - 1f                   /* namesz (incl. NUL) */
	.long 4f - 3f                   /* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
1:	.asciz "Xen"
2:	.balign 4
3:	.long _start
4:	.balign 4

	.section .text.entry, "ax", @progbits
	.code32
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movl %ebx, %esi                 /* keep the start_info pointer */

	/* Our own flat GDT; reload every segment register from it. */
	lgdt gdt_desc
	ljmp $0x08, $1f
1:	movl $0x10, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $__stack_top, %esp
	xorl %ebp, %ebp
	pushl $0x2                      /* EFLAGS: only the reserved bit */
	popfl

	/* Zero .bss (the loader should have, but do not rely on it). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	subl $12, %esp                  /* keep the stack 16-byte aligned at the call */
	pushl %esi
	call cstart                     /* serial_init(); main(si); reset() */
	/* not reached */
2:	cli
	hlt
	jmp 2b
	.size _start, . - _start

	.section .rodata
	.balign 8
gdt:
	.quad 0x0000000000000000        /* null */
	.quad 0x00cf9a000000ffff        /* 0x08: code, 32-bit, base 0, limit 4 GiB */
	.quad 0x00cf92000000ffff        /* 0x10: data, base 0, limit 4 GiB */
gdt_end:
	.balign 4
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	/* The stack, in .bss (zeroed above before first use). */
	.section .bss
	.balign 16
	.globl __stack_bottom
__stack_bottom:
	.skip 16384
	.globl __stack_top
__stack_top:

	.section .note.GNU-stack, "", @progbits
