// C side of swvm's KVM access: linux/kvm.h and one small shim per ioctl.
//
// Swift cannot call the variadic ioctl(2) nor use the _IOW()-style request
// macros, so each ioctl the VMM needs gets a typed function here. They
// return what ioctl returns (-1 with errno set on failure).
#ifndef SWVM_CKVM_H
#define SWVM_CKVM_H

#include <stdint.h>
#include <stddef.h>
#include <linux/kvm.h>
#include <asm/bootparam.h>

// MARK: /dev/kvm (system)
int ckvm_get_api_version(int kvm_fd);
int ckvm_check_extension(int fd, long cap);
int ckvm_create_vm(int kvm_fd);
int ckvm_get_vcpu_mmap_size(int kvm_fd);
/// Fills `entries` (capacity `*count`) and updates `*count`.
int ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid_entry2 *entries, uint32_t *count);

// MARK: VM
int ckvm_set_user_memory_region(int vm_fd, uint32_t slot, uint64_t guest_phys_addr,
                                uint64_t memory_size, uint64_t userspace_addr);
int ckvm_set_tss_addr(int vm_fd, uint64_t addr);
int ckvm_set_identity_map_addr(int vm_fd, uint64_t addr);
int ckvm_create_irqchip(int vm_fd);
int ckvm_create_pit2(int vm_fd, uint32_t flags);
int ckvm_create_vcpu(int vm_fd, unsigned long id);
int ckvm_irqfd(int vm_fd, int eventfd, uint32_t gsi, int deassign);
int ckvm_ioeventfd(int vm_fd, int eventfd, uint64_t addr, uint32_t len,
                   int datamatch, uint64_t datamatch_value, int deassign);
int ckvm_enable_cap(int fd, uint32_t cap, uint64_t arg0);

// MARK: vCPU
int ckvm_run(int vcpu_fd);
int ckvm_get_regs(int vcpu_fd, struct kvm_regs *regs);
int ckvm_set_regs(int vcpu_fd, const struct kvm_regs *regs);
int ckvm_get_sregs(int vcpu_fd, struct kvm_sregs *sregs);
int ckvm_set_sregs(int vcpu_fd, const struct kvm_sregs *sregs);
int ckvm_set_fpu(int vcpu_fd, const struct kvm_fpu *fpu);
int ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid_entry2 *entries, uint32_t count);
/// Sets `count` MSRs; returns how many were set.
int ckvm_set_msrs(int vcpu_fd, const struct kvm_msr_entry *entries, uint32_t count);
int ckvm_get_msr(int vcpu_fd, uint32_t index, uint64_t *value);
int ckvm_get_lapic(int vcpu_fd, struct kvm_lapic_state *lapic);
int ckvm_set_lapic(int vcpu_fd, const struct kvm_lapic_state *lapic);
int ckvm_get_vcpu_events(int vcpu_fd, struct kvm_vcpu_events *events);
int ckvm_set_vcpu_events(int vcpu_fd, const struct kvm_vcpu_events *events);
int ckvm_get_mp_state(int vcpu_fd, uint32_t *state);
int ckvm_translate(int vcpu_fd, uint64_t gva, uint64_t *gpa, int *valid);
/// The guest TSC frequency in kHz (KVM_GET_TSC_KHZ).
int ckvm_get_tsc_khz(int vcpu_fd);

// MARK: state, for snapshots (save and restore)
int ckvm_get_fpu(int vcpu_fd, struct kvm_fpu *fpu);
/// The XSAVE buffer size KVM_GET_XSAVE2 needs, or 0 without
/// KVM_CAP_XSAVE2 (then KVM_GET_XSAVE's 4096 bytes apply).
int ckvm_xsave2_size(int vm_fd);
/// `size` bytes: KVM_GET_XSAVE2 when larger than struct kvm_xsave.
int ckvm_get_xsave(int vcpu_fd, void *buf, uint32_t size);
int ckvm_set_xsave(int vcpu_fd, const void *buf);
int ckvm_get_xcrs(int vcpu_fd, struct kvm_xcrs *xcrs);
int ckvm_set_xcrs(int vcpu_fd, const struct kvm_xcrs *xcrs);
int ckvm_get_debugregs(int vcpu_fd, struct kvm_debugregs *regs);
int ckvm_set_debugregs(int vcpu_fd, const struct kvm_debugregs *regs);
int ckvm_set_mp_state(int vcpu_fd, uint32_t state);
/// The MSRs KVM saves and restores (KVM_GET_MSR_INDEX_LIST); fills
/// `indices` (capacity `*count`) and updates `*count`.
int ckvm_get_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t *count);
/// Reads `count` MSRs (indices set in `entries`); returns how many were
/// read, in order, before the first that could not be.
int ckvm_get_msrs(int vcpu_fd, struct kvm_msr_entry *entries, uint32_t count);
int ckvm_get_irqchip(int vm_fd, uint32_t chip_id, struct kvm_irqchip *chip);
int ckvm_set_irqchip(int vm_fd, const struct kvm_irqchip *chip);
int ckvm_get_pit2(int vm_fd, struct kvm_pit_state2 *pit);
int ckvm_set_pit2(int vm_fd, const struct kvm_pit_state2 *pit);
int ckvm_get_clock(int vm_fd, struct kvm_clock_data *clock);
int ckvm_set_clock(int vm_fd, const struct kvm_clock_data *clock);

// MARK: kvm_run accessors (the exit data lives in anonymous unions)
uint32_t ckvm_run_exit_reason(const struct kvm_run *run);
void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value);
void ckvm_run_io(const struct kvm_run *run, uint8_t *direction, uint8_t *size,
                 uint16_t *port, uint32_t *count, uint64_t *data_offset);
void ckvm_run_mmio(struct kvm_run *run, uint64_t *phys_addr, uint8_t **data,
                   uint32_t *len, uint8_t *is_write);
uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run);
/// Internal-error exits: suberror, and up to `cap` of the data words.
uint32_t ckvm_run_internal(const struct kvm_run *run, uint64_t *data, uint32_t cap, uint32_t *ndata);
/// Emulation-failure exits that carry instruction bytes (KVM >= 5.14).
/// Returns the byte count copied (0 when the exit has none).
uint32_t ckvm_run_emulation_insn(const struct kvm_run *run, uint8_t *bytes, uint32_t cap);
uint32_t ckvm_run_system_event_type(const struct kvm_run *run);

// MARK: request numbers, for seccomp rules on ioctl's request argument
// (the VMM's vCPU threads may make these and no other; see VMMSeccomp).
extern const unsigned long ckvm_KVM_RUN;
extern const unsigned long ckvm_KVM_GET_REGS;
extern const unsigned long ckvm_KVM_SET_REGS;
extern const unsigned long ckvm_KVM_GET_SREGS;
extern const unsigned long ckvm_KVM_TRANSLATE;
extern const unsigned long ckvm_KVM_GET_VCPU_EVENTS;
extern const unsigned long ckvm_KVM_SET_VCPU_EVENTS;
extern const unsigned long ckvm_KVM_GET_MP_STATE;
// What saving a snapshot reads (on the main thread, after a cold boot).
extern const unsigned long ckvm_KVM_GET_FPU;
extern const unsigned long ckvm_KVM_GET_XSAVE;
extern const unsigned long ckvm_KVM_GET_XSAVE2;
extern const unsigned long ckvm_KVM_GET_XCRS;
extern const unsigned long ckvm_KVM_GET_DEBUGREGS;
extern const unsigned long ckvm_KVM_GET_LAPIC;
extern const unsigned long ckvm_KVM_GET_MSRS;
extern const unsigned long ckvm_KVM_GET_MSR_INDEX_LIST;
extern const unsigned long ckvm_KVM_GET_IRQCHIP;
extern const unsigned long ckvm_KVM_GET_PIT2;
extern const unsigned long ckvm_KVM_GET_CLOCK;
extern const unsigned long ckvm_KVM_GET_TSC_KHZ;
extern const unsigned long ckvm_KVM_CHECK_EXTENSION;

// MARK: boot_params layout (arch/x86/include/uapi/asm/bootparam.h)
// Offsets are taken from the real header so the zero page cannot drift.
extern const size_t ckvm_bp_size;
extern const size_t ckvm_bp_e820_entries;
extern const size_t ckvm_bp_e820_table;
extern const size_t ckvm_bp_e820_max;
extern const size_t ckvm_bp_hdr;
extern const size_t ckvm_bp_hdr_setup_sects;
extern const size_t ckvm_bp_hdr_boot_flag;
extern const size_t ckvm_bp_hdr_header;
extern const size_t ckvm_bp_hdr_version;
extern const size_t ckvm_bp_hdr_type_of_loader;
extern const size_t ckvm_bp_hdr_loadflags;
extern const size_t ckvm_bp_hdr_ramdisk_image;
extern const size_t ckvm_bp_hdr_ramdisk_size;
extern const size_t ckvm_bp_hdr_cmd_line_ptr;
extern const size_t ckvm_bp_hdr_initrd_addr_max;
extern const size_t ckvm_bp_hdr_kernel_alignment;
extern const size_t ckvm_bp_hdr_relocatable_kernel;
extern const size_t ckvm_bp_hdr_xloadflags;
extern const size_t ckvm_bp_hdr_cmdline_size;
extern const size_t ckvm_bp_hdr_pref_address;
extern const size_t ckvm_bp_hdr_init_size;
extern const size_t ckvm_bp_hdr_end;   // one past the setup header

#endif
