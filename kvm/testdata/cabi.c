/*
 * cabi.c prints the KVM ABI values that kvm's tests hard-code: ioctl
 * request numbers, struct sizes and field offsets, as the C compiler sees
 * them with this machine's kernel headers (linux-libc-dev). Regenerate with
 *     gcc -o /tmp/cabi kvm/testdata/cabi.c && /tmp/cabi
 * and compare with the tables in ioctl_linux_test.go and
 * layout_unsafe_test.go. It is not compiled by go build (testdata/).
 */
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define P(x) printf("%-34s = 0x%08lx\n", #x, (unsigned long)(x))
#define S(x) printf("sizeof %-28s = %zu\n", #x, sizeof(struct x))
#define O(s,f) printf("offsetof %s.%s = %zu\n", #s, #f, offsetof(struct s,f))
int main(void){
P(KVM_GET_API_VERSION);P(KVM_CREATE_VM);P(KVM_GET_MSR_INDEX_LIST);P(KVM_CHECK_EXTENSION);P(KVM_GET_VCPU_MMAP_SIZE);P(KVM_GET_SUPPORTED_CPUID);
P(KVM_SET_USER_MEMORY_REGION);P(KVM_SET_TSS_ADDR);P(KVM_SET_IDENTITY_MAP_ADDR);P(KVM_CREATE_IRQCHIP);P(KVM_CREATE_PIT2);P(KVM_IRQ_LINE);P(KVM_IRQFD);P(KVM_IOEVENTFD);P(KVM_SET_GSI_ROUTING);P(KVM_GET_CLOCK);P(KVM_SET_CLOCK);P(KVM_CREATE_VCPU);
P(KVM_RUN);P(KVM_GET_REGS);P(KVM_SET_REGS);P(KVM_GET_SREGS);P(KVM_SET_SREGS);P(KVM_GET_FPU);P(KVM_SET_FPU);P(KVM_GET_MSRS);P(KVM_SET_MSRS);P(KVM_SET_CPUID2);P(KVM_GET_LAPIC);P(KVM_SET_LAPIC);P(KVM_GET_VCPU_EVENTS);P(KVM_SET_VCPU_EVENTS);P(KVM_GET_MP_STATE);P(KVM_SET_MP_STATE);P(KVM_INTERRUPT);
S(kvm_regs);S(kvm_sregs);S(kvm_segment);S(kvm_dtable);S(kvm_fpu);S(kvm_lapic_state);S(kvm_vcpu_events);S(kvm_mp_state);S(kvm_cpuid_entry2);S(kvm_cpuid2);S(kvm_msr_entry);S(kvm_msrs);S(kvm_msr_list);S(kvm_clock_data);S(kvm_userspace_memory_region);S(kvm_irqfd);S(kvm_ioeventfd);S(kvm_pit_config);S(kvm_irq_level);S(kvm_irq_routing_entry);S(kvm_irq_routing);S(kvm_irq_routing_irqchip);S(kvm_irq_routing_msi);S(kvm_interrupt);S(kvm_run);
O(kvm_run,request_interrupt_window);O(kvm_run,immediate_exit);O(kvm_run,exit_reason);O(kvm_run,ready_for_interrupt_injection);O(kvm_run,if_flag);O(kvm_run,flags);O(kvm_run,cr8);O(kvm_run,apic_base);
O(kvm_run,io);O(kvm_run,io.direction);O(kvm_run,io.size);O(kvm_run,io.port);O(kvm_run,io.count);O(kvm_run,io.data_offset);
O(kvm_run,mmio.phys_addr);O(kvm_run,mmio.data);O(kvm_run,mmio.len);O(kvm_run,mmio.is_write);
O(kvm_run,fail_entry.hardware_entry_failure_reason);O(kvm_run,fail_entry.cpu);
O(kvm_run,internal.suberror);O(kvm_run,internal.ndata);O(kvm_run,internal.data);printf("internal.data len %zu\n", sizeof(((struct kvm_run*)0)->internal.data)/8);
O(kvm_run,system_event.type);O(kvm_run,system_event.ndata);O(kvm_run,system_event.flags);O(kvm_run,system_event.data);
O(kvm_run,kvm_valid_regs);O(kvm_run,kvm_dirty_regs);O(kvm_run,s);
O(kvm_vcpu_events,exception);O(kvm_vcpu_events,interrupt);O(kvm_vcpu_events,nmi);O(kvm_vcpu_events,sipi_vector);O(kvm_vcpu_events,flags);O(kvm_vcpu_events,smi);O(kvm_vcpu_events,triple_fault);O(kvm_vcpu_events,reserved);O(kvm_vcpu_events,exception_has_payload);O(kvm_vcpu_events,exception_payload);
O(kvm_sregs,cs);O(kvm_sregs,gdt);O(kvm_sregs,cr0);O(kvm_sregs,efer);O(kvm_sregs,apic_base);O(kvm_sregs,interrupt_bitmap);
O(kvm_fpu,fpr);O(kvm_fpu,fcw);O(kvm_fpu,last_ip);O(kvm_fpu,xmm);O(kvm_fpu,mxcsr);
O(kvm_clock_data,clock);O(kvm_clock_data,flags);O(kvm_clock_data,realtime);O(kvm_clock_data,host_tsc);
O(kvm_ioeventfd,datamatch);O(kvm_ioeventfd,addr);O(kvm_ioeventfd,len);O(kvm_ioeventfd,fd);O(kvm_ioeventfd,flags);
O(kvm_irqfd,fd);O(kvm_irqfd,gsi);O(kvm_irqfd,flags);O(kvm_irqfd,resamplefd);
O(kvm_irq_routing_entry,gsi);O(kvm_irq_routing_entry,type);O(kvm_irq_routing_entry,flags);O(kvm_irq_routing_entry,u);
O(kvm_cpuid2,entries);O(kvm_msrs,entries);O(kvm_msr_list,indices);
P(KVM_EXIT_UNKNOWN);
P(KVM_CAP_IRQCHIP);P(KVM_CAP_HLT);P(KVM_CAP_USER_MEMORY);P(KVM_CAP_SET_TSS_ADDR);P(KVM_CAP_EXT_CPUID);P(KVM_CAP_NR_VCPUS);P(KVM_CAP_MP_STATE);P(KVM_CAP_IRQ_ROUTING);P(KVM_CAP_IRQ_INJECT_STATUS);P(KVM_CAP_IOEVENTFD);P(KVM_CAP_SET_IDENTITY_MAP_ADDR);P(KVM_CAP_ADJUST_CLOCK);P(KVM_CAP_IRQFD);P(KVM_CAP_PIT2);P(KVM_CAP_VCPU_EVENTS);P(KVM_CAP_XSAVE);P(KVM_CAP_XCRS);P(KVM_CAP_TSC_CONTROL);P(KVM_CAP_MAX_VCPUS);P(KVM_CAP_KVMCLOCK_CTRL);P(KVM_CAP_READONLY_MEM);P(KVM_CAP_IMMEDIATE_EXIT);P(KVM_CAP_NR_MEMSLOTS);P(KVM_CAP_SIGNAL_MSI);P(KVM_CAP_TSC_DEADLINE_TIMER);P(KVM_CAP_MAX_VCPU_ID);P(KVM_CAP_X2APIC_API);P(KVM_CAP_SPLIT_IRQCHIP);P(KVM_CAP_PIT_STATE2);P(KVM_CAP_DEBUGREGS);P(KVM_CAP_USER_NMI);P(KVM_CAP_SYNC_REGS);P(KVM_CAP_GET_MSR_FEATURES);P(KVM_CAP_ENABLE_CAP_VM);P(KVM_CAP_IRQFD_RESAMPLE);P(KVM_CAP_MSI_DEVID);P(KVM_CAP_EXCEPTION_PAYLOAD);P(KVM_CAP_HLT);P(KVM_CAP_COALESCED_MMIO);P(KVM_CAP_PIT);P(KVM_CAP_IOEVENTFD_ANY_LENGTH);P(KVM_CAP_IOEVENTFD_NO_LENGTH);P(KVM_CAP_SET_GUEST_DEBUG);P(KVM_CAP_ONE_REG);P(KVM_CAP_GET_TSC_KHZ);
}
