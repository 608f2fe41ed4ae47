// Typed shims over the KVM ioctls; see include/CKVM.h.
#include "CKVM.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

int ckvm_get_api_version(int kvm_fd) { return ioctl(kvm_fd, KVM_GET_API_VERSION, 0); }
int ckvm_check_extension(int fd, long cap) { return ioctl(fd, KVM_CHECK_EXTENSION, cap); }
int ckvm_create_vm(int kvm_fd) { return ioctl(kvm_fd, KVM_CREATE_VM, 0); }
int ckvm_get_vcpu_mmap_size(int kvm_fd) { return ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0); }

int ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid_entry2 *entries, uint32_t *count) {
    size_t size = sizeof(struct kvm_cpuid2) + *count * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, size);
    if (!cpuid) { errno = ENOMEM; return -1; }
    cpuid->nent = *count;
    int r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid);
    if (r >= 0) {
        memcpy(entries, cpuid->entries, cpuid->nent * sizeof(struct kvm_cpuid_entry2));
        *count = cpuid->nent;
    }
    int saved = errno;
    free(cpuid);
    errno = saved;
    return r;
}

int ckvm_set_user_memory_region(int vm_fd, uint32_t slot, uint64_t guest_phys_addr,
                                uint64_t memory_size, uint64_t userspace_addr) {
    struct kvm_userspace_memory_region region = {
        .slot = slot, .flags = 0, .guest_phys_addr = guest_phys_addr,
        .memory_size = memory_size, .userspace_addr = userspace_addr,
    };
    return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

int ckvm_set_tss_addr(int vm_fd, uint64_t addr) { return ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)addr); }
int ckvm_set_identity_map_addr(int vm_fd, uint64_t addr) { return ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr); }
int ckvm_create_irqchip(int vm_fd) { return ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0); }

int ckvm_create_pit2(int vm_fd, uint32_t flags) {
    struct kvm_pit_config config = { .flags = flags };
    return ioctl(vm_fd, KVM_CREATE_PIT2, &config);
}

int ckvm_create_vcpu(int vm_fd, unsigned long id) { return ioctl(vm_fd, KVM_CREATE_VCPU, id); }

int ckvm_irqfd(int vm_fd, int eventfd, uint32_t gsi, int deassign) {
    struct kvm_irqfd req = { .fd = (uint32_t)eventfd, .gsi = gsi,
                             .flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0 };
    return ioctl(vm_fd, KVM_IRQFD, &req);
}

int ckvm_ioeventfd(int vm_fd, int eventfd, uint64_t addr, uint32_t len,
                   int datamatch, uint64_t datamatch_value, int deassign) {
    struct kvm_ioeventfd req = { .datamatch = datamatch_value, .addr = addr, .len = len,
                                 .fd = eventfd, .flags = 0 };
    if (datamatch) req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    if (deassign) req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    return ioctl(vm_fd, KVM_IOEVENTFD, &req);
}

int ckvm_enable_cap(int fd, uint32_t cap, uint64_t arg0) {
    struct kvm_enable_cap req = { .cap = cap };
    req.args[0] = arg0;
    return ioctl(fd, KVM_ENABLE_CAP, &req);
}

int ckvm_run(int vcpu_fd) { return ioctl(vcpu_fd, KVM_RUN, 0); }
int ckvm_get_regs(int fd, struct kvm_regs *regs) { return ioctl(fd, KVM_GET_REGS, regs); }
int ckvm_set_regs(int fd, const struct kvm_regs *regs) { return ioctl(fd, KVM_SET_REGS, regs); }
int ckvm_get_sregs(int fd, struct kvm_sregs *sregs) { return ioctl(fd, KVM_GET_SREGS, sregs); }
int ckvm_set_sregs(int fd, const struct kvm_sregs *sregs) { return ioctl(fd, KVM_SET_SREGS, sregs); }
int ckvm_set_fpu(int fd, const struct kvm_fpu *fpu) { return ioctl(fd, KVM_SET_FPU, fpu); }

int ckvm_set_cpuid2(int fd, const struct kvm_cpuid_entry2 *entries, uint32_t count) {
    size_t size = sizeof(struct kvm_cpuid2) + count * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, size);
    if (!cpuid) { errno = ENOMEM; return -1; }
    cpuid->nent = count;
    memcpy(cpuid->entries, entries, count * sizeof(struct kvm_cpuid_entry2));
    int r = ioctl(fd, KVM_SET_CPUID2, cpuid);
    int saved = errno;
    free(cpuid);
    errno = saved;
    return r;
}

int ckvm_set_msrs(int fd, const struct kvm_msr_entry *entries, uint32_t count) {
    size_t size = sizeof(struct kvm_msrs) + count * sizeof(struct kvm_msr_entry);
    struct kvm_msrs *msrs = calloc(1, size);
    if (!msrs) { errno = ENOMEM; return -1; }
    msrs->nmsrs = count;
    memcpy(msrs->entries, entries, count * sizeof(struct kvm_msr_entry));
    int r = ioctl(fd, KVM_SET_MSRS, msrs);
    int saved = errno;
    free(msrs);
    errno = saved;
    return r;
}

int ckvm_get_msr(int fd, uint32_t index, uint64_t *value) {
    struct { struct kvm_msrs head; struct kvm_msr_entry entry; } req;
    memset(&req, 0, sizeof req);
    req.head.nmsrs = 1;
    req.entry.index = index;
    int r = ioctl(fd, KVM_GET_MSRS, &req);
    if (r == 1) *value = req.entry.data;
    return r;
}

int ckvm_get_lapic(int fd, struct kvm_lapic_state *lapic) { return ioctl(fd, KVM_GET_LAPIC, lapic); }
int ckvm_set_lapic(int fd, const struct kvm_lapic_state *lapic) { return ioctl(fd, KVM_SET_LAPIC, lapic); }
int ckvm_get_vcpu_events(int fd, struct kvm_vcpu_events *ev) { return ioctl(fd, KVM_GET_VCPU_EVENTS, ev); }
int ckvm_set_vcpu_events(int fd, const struct kvm_vcpu_events *ev) { return ioctl(fd, KVM_SET_VCPU_EVENTS, ev); }

int ckvm_get_mp_state(int fd, uint32_t *state) {
    struct kvm_mp_state mp;
    int r = ioctl(fd, KVM_GET_MP_STATE, &mp);
    if (r == 0) *state = mp.mp_state;
    return r;
}

int ckvm_translate(int fd, uint64_t gva, uint64_t *gpa, int *valid) {
    struct kvm_translation tr = { .linear_address = gva };
    int r = ioctl(fd, KVM_TRANSLATE, &tr);
    if (r == 0) { *gpa = tr.physical_address; *valid = tr.valid; }
    return r;
}

int ckvm_get_fpu(int fd, struct kvm_fpu *fpu) { return ioctl(fd, KVM_GET_FPU, fpu); }

int ckvm_xsave2_size(int vm_fd) {
#ifdef KVM_CAP_XSAVE2
    int r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return r > 0 ? r : 0;
#else
    return 0;
#endif
}

int ckvm_get_xsave(int fd, void *buf, uint32_t size) {
#ifdef KVM_GET_XSAVE2
    if (size > sizeof(struct kvm_xsave)) return ioctl(fd, KVM_GET_XSAVE2, buf);
#endif
    if (size < sizeof(struct kvm_xsave)) { errno = EINVAL; return -1; }
    return ioctl(fd, KVM_GET_XSAVE, buf);
}

int ckvm_set_xsave(int fd, const void *buf) { return ioctl(fd, KVM_SET_XSAVE, buf); }
int ckvm_get_xcrs(int fd, struct kvm_xcrs *xcrs) { return ioctl(fd, KVM_GET_XCRS, xcrs); }
int ckvm_set_xcrs(int fd, const struct kvm_xcrs *xcrs) { return ioctl(fd, KVM_SET_XCRS, xcrs); }
int ckvm_get_debugregs(int fd, struct kvm_debugregs *r) { return ioctl(fd, KVM_GET_DEBUGREGS, r); }
int ckvm_set_debugregs(int fd, const struct kvm_debugregs *r) { return ioctl(fd, KVM_SET_DEBUGREGS, r); }

int ckvm_set_mp_state(int fd, uint32_t state) {
    struct kvm_mp_state mp = { .mp_state = state };
    return ioctl(fd, KVM_SET_MP_STATE, &mp);
}

int ckvm_get_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t *count) {
    struct kvm_msr_list *list = calloc(1, sizeof *list + *count * sizeof(uint32_t));
    if (!list) { errno = ENOMEM; return -1; }
    list->nmsrs = *count;
    int r = ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list);
    int saved = errno;
    if (r == 0) {
        memcpy(indices, list->indices, list->nmsrs * sizeof(uint32_t));
        *count = list->nmsrs;
    }
    free(list);
    errno = saved;
    return r;
}

int ckvm_get_msrs(int fd, struct kvm_msr_entry *entries, uint32_t count) {
    size_t size = sizeof(struct kvm_msrs) + count * sizeof(struct kvm_msr_entry);
    struct kvm_msrs *msrs = calloc(1, size);
    if (!msrs) { errno = ENOMEM; return -1; }
    msrs->nmsrs = count;
    memcpy(msrs->entries, entries, count * sizeof(struct kvm_msr_entry));
    int r = ioctl(fd, KVM_GET_MSRS, msrs);
    int saved = errno;
    if (r > 0) memcpy(entries, msrs->entries, (size_t)r * sizeof(struct kvm_msr_entry));
    free(msrs);
    errno = saved;
    return r;
}

int ckvm_get_irqchip(int vm_fd, uint32_t chip_id, struct kvm_irqchip *chip) {
    memset(chip, 0, sizeof *chip);
    chip->chip_id = chip_id;
    return ioctl(vm_fd, KVM_GET_IRQCHIP, chip);
}
int ckvm_set_irqchip(int vm_fd, const struct kvm_irqchip *chip) { return ioctl(vm_fd, KVM_SET_IRQCHIP, chip); }
int ckvm_get_pit2(int vm_fd, struct kvm_pit_state2 *pit) { return ioctl(vm_fd, KVM_GET_PIT2, pit); }
int ckvm_set_pit2(int vm_fd, const struct kvm_pit_state2 *pit) { return ioctl(vm_fd, KVM_SET_PIT2, pit); }
int ckvm_get_clock(int vm_fd, struct kvm_clock_data *clock) { return ioctl(vm_fd, KVM_GET_CLOCK, clock); }
int ckvm_set_clock(int vm_fd, const struct kvm_clock_data *clock) { return ioctl(vm_fd, KVM_SET_CLOCK, clock); }

int ckvm_get_tsc_khz(int fd) { return ioctl(fd, KVM_GET_TSC_KHZ, 0); }

uint32_t ckvm_run_exit_reason(const struct kvm_run *run) { return run->exit_reason; }
void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) { run->immediate_exit = value; }

void ckvm_run_io(const struct kvm_run *run, uint8_t *direction, uint8_t *size,
                 uint16_t *port, uint32_t *count, uint64_t *data_offset) {
    *direction = run->io.direction;
    *size = run->io.size;
    *port = run->io.port;
    *count = run->io.count;
    *data_offset = run->io.data_offset;
}

void ckvm_run_mmio(struct kvm_run *run, uint64_t *phys_addr, uint8_t **data,
                   uint32_t *len, uint8_t *is_write) {
    *phys_addr = run->mmio.phys_addr;
    *data = run->mmio.data;
    *len = run->mmio.len;
    *is_write = run->mmio.is_write;
}

uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run) {
    return run->fail_entry.hardware_entry_failure_reason;
}

uint32_t ckvm_run_internal(const struct kvm_run *run, uint64_t *data, uint32_t cap, uint32_t *ndata) {
    uint32_t n = run->internal.ndata;
    if (n > 16) n = 16;
    *ndata = n;
    for (uint32_t i = 0; i < n && i < cap; i++) data[i] = run->internal.data[i];
    return run->internal.suberror;
}

uint32_t ckvm_run_emulation_insn(const struct kvm_run *run, uint8_t *bytes, uint32_t cap) {
    if (run->emulation_failure.suberror != KVM_INTERNAL_ERROR_EMULATION) return 0;
    if (run->emulation_failure.ndata < 3) return 0;
    if (!(run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) return 0;
    uint32_t n = run->emulation_failure.insn_size;
    if (n > sizeof run->emulation_failure.insn_bytes) n = sizeof run->emulation_failure.insn_bytes;
    if (n > cap) n = cap;
    memcpy(bytes, run->emulation_failure.insn_bytes, n);
    return n;
}

uint32_t ckvm_run_system_event_type(const struct kvm_run *run) { return run->system_event.type; }

const unsigned long ckvm_KVM_RUN = KVM_RUN;
const unsigned long ckvm_KVM_GET_REGS = KVM_GET_REGS;
const unsigned long ckvm_KVM_SET_REGS = KVM_SET_REGS;
const unsigned long ckvm_KVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long ckvm_KVM_TRANSLATE = KVM_TRANSLATE;
const unsigned long ckvm_KVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
const unsigned long ckvm_KVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
const unsigned long ckvm_KVM_GET_MP_STATE = KVM_GET_MP_STATE;
const unsigned long ckvm_KVM_GET_FPU = KVM_GET_FPU;
const unsigned long ckvm_KVM_GET_XSAVE = KVM_GET_XSAVE;
const unsigned long ckvm_KVM_GET_XSAVE2 = KVM_GET_XSAVE2;
const unsigned long ckvm_KVM_GET_XCRS = KVM_GET_XCRS;
const unsigned long ckvm_KVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
const unsigned long ckvm_KVM_GET_LAPIC = KVM_GET_LAPIC;
const unsigned long ckvm_KVM_GET_MSRS = KVM_GET_MSRS;
const unsigned long ckvm_KVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
const unsigned long ckvm_KVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
const unsigned long ckvm_KVM_GET_PIT2 = KVM_GET_PIT2;
const unsigned long ckvm_KVM_GET_CLOCK = KVM_GET_CLOCK;
const unsigned long ckvm_KVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
const unsigned long ckvm_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;

const size_t ckvm_bp_size = sizeof(struct boot_params);
const size_t ckvm_bp_e820_entries = offsetof(struct boot_params, e820_entries);
const size_t ckvm_bp_e820_table = offsetof(struct boot_params, e820_table);
const size_t ckvm_bp_e820_max = sizeof(((struct boot_params *)0)->e820_table) / sizeof(struct boot_e820_entry);
const size_t ckvm_bp_hdr = offsetof(struct boot_params, hdr);
#define HDR(f) (offsetof(struct boot_params, hdr) + offsetof(struct setup_header, f))
const size_t ckvm_bp_hdr_setup_sects = HDR(setup_sects);
const size_t ckvm_bp_hdr_boot_flag = HDR(boot_flag);
const size_t ckvm_bp_hdr_header = HDR(header);
const size_t ckvm_bp_hdr_version = HDR(version);
const size_t ckvm_bp_hdr_type_of_loader = HDR(type_of_loader);
const size_t ckvm_bp_hdr_loadflags = HDR(loadflags);
const size_t ckvm_bp_hdr_ramdisk_image = HDR(ramdisk_image);
const size_t ckvm_bp_hdr_ramdisk_size = HDR(ramdisk_size);
const size_t ckvm_bp_hdr_cmd_line_ptr = HDR(cmd_line_ptr);
const size_t ckvm_bp_hdr_initrd_addr_max = HDR(initrd_addr_max);
const size_t ckvm_bp_hdr_kernel_alignment = HDR(kernel_alignment);
const size_t ckvm_bp_hdr_relocatable_kernel = HDR(relocatable_kernel);
const size_t ckvm_bp_hdr_xloadflags = HDR(xloadflags);
const size_t ckvm_bp_hdr_cmdline_size = HDR(cmdline_size);
const size_t ckvm_bp_hdr_pref_address = HDR(pref_address);
const size_t ckvm_bp_hdr_init_size = HDR(init_size);
const size_t ckvm_bp_hdr_end = offsetof(struct boot_params, hdr) + sizeof(struct setup_header);
