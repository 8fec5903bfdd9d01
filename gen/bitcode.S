/* bitcode.S — the kernel templates' LLVM bitcode, one blob per ISA level,
 * and the model runtime's object, embedded in kgen so it needs no clang and no template files at run time.
 * The files are found through the assembler's include path (-Wa,-I$(BCB): see BCB in Makefile.in).
 * gen/llvm.c reads them (see gen.h). */
#define BLOB(name, file)                  \
    .section .rodata;                     \
    .balign 16;                           \
    .globl kgen_bc_##name;                \
    .globl kgen_bc_##name##_end;          \
kgen_bc_##name:                           \
    .incbin file;                         \
kgen_bc_##name##_end:                     \
    .byte 0

BLOB(generic, "templates-generic.bc")
BLOB(avx2, "templates-avx2.bc")
BLOB(avx512, "templates-avx512.bc")
BLOB(amx, "templates-amx.bc")
/* the model runtime (runtime/model/), linked into every compiled model */
BLOB(rt, "kgen-rt.o")
/* the CUDA templates (templates/cuda/), handed to NVRTC as headers (gen/cuda.c) */
BLOB(cu_common, "templates/cuda/common.cuh")
BLOB(cu_mm, "templates/cuda/mm.cuh")
BLOB(cu_ops, "templates/cuda/ops.cuh")
BLOB(cu_attn, "templates/cuda/attn.cuh")
BLOB(cu_types, "kgen_types.h")
/* the model ABI header, written beside `kgen compile --emit obj` objects */
BLOB(model_h, "kgen_model.h")

.section .note.GNU-stack, "", @progbits
