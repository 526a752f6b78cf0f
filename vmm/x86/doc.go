// Package x86 builds the x86 platform description a govmm guest sees: the
// CPUID table of each vCPU (BuildCPUID), the MSR values a vCPU starts with
// (BootMSRs, FilterMSRs) and the Intel MultiProcessor Specification 1.4
// table that tells the guest how many CPUs there are and how ISA interrupts
// reach the I/O APIC (WriteMPTable).
//
// Everything here is a pure function of its inputs: the host's KVM
// capability lists are passed in rather than queried, so every rule can be
// tested against synthetic Intel-like and AMD-like hosts as well as the
// machine the tests run on.
//
// The three pieces describe one machine and must agree with each other:
// one socket, NumVCPUs cores, one thread per core; vCPU i has (x2)APIC ID i
// (the ID KVM's in-kernel LAPIC gives vCPU i); the I/O APIC has ID
// NumVCPUs; ISA IRQ n reaches I/O APIC pin n, as KVM's default GSI routing
// wires it.
package x86
