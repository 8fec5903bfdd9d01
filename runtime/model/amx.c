/*
 * amx.c — the AMX tile state for this process (Linux keeps it off until a
 * process asks: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); asked
 * at open by CPU models, whose prefill products use AMX tiles when granted
 * (templates/cpu/mm_amx.h, the run-time parameter KGM_RT_AMX).
 */
#include "rt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define KGR_ARCH_REQ_XCOMP_PERM 0x1023 /* <asm/prctl.h>, Linux 5.16 */
#define KGR_XFEATURE_XTILEDATA 18

int kgr_amx_enable(char *why, size_t cap)
{
#if defined(__x86_64__) && defined(SYS_arch_prctl)
    unsigned a, b, c, d;
    /* CPUID.(7,0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) {
        snprintf(why, cap, "the CPU has no AMX-INT8");
        return 0;
    }
    if (syscall(SYS_arch_prctl, KGR_ARCH_REQ_XCOMP_PERM, KGR_XFEATURE_XTILEDATA) != 0) {
        snprintf(why, cap, "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM: %s)", strerror(errno));
        return 0;
    }
    return 1;
#else
    snprintf(why, cap, "AMX is an x86-64 Linux feature");
    return 0;
#endif
}
