/*
 * cudrv.h — the CUDA driver API, loaded at run time with dlopen: kgen and
 * every compiled model load and run on machines without CUDA; only a model
 * compiled for a CUDA target needs the driver, and says so at open when it
 * is missing or finds no usable GPU.
 *
 * Only the types and entry points kgen uses are declared here (no CUDA
 * header is needed to build). The library is $KGEN_LIBCUDA if set (tests
 * use it to force the failure path), else libcuda.so.1.
 */
#ifndef KGEN_CUDRV_H
#define KGEN_CUDRV_H

#include <stddef.h>
#include <stdint.h>

typedef int CUresult; /* 0: CUDA_SUCCESS */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef unsigned long long CUdeviceptr;

enum {
    KGR_CU_ATTR_SM_COUNT = 16,  /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
    KGR_CU_ATTR_CC_MAJOR = 75,  /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    KGR_CU_ATTR_CC_MINOR = 76,
    KGR_CU_CAPTURE_THREAD_LOCAL = 1,
};

typedef struct kgr_cu {
    void *lib;
    CUresult (*Init)(unsigned);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemAllocHost)(void **, size_t);
    CUresult (*MemFreeHost)(void *);
    CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*StreamBeginCapture)(CUstream, int);
    CUresult (*StreamEndCapture)(CUstream, CUgraph *);
    CUresult (*GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*GraphLaunch)(CUgraphExec, CUstream);
    CUresult (*GraphExecDestroy)(CUgraphExec);
    CUresult (*GraphDestroy)(CUgraph);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
    CUresult (*GetErrorString)(CUresult, const char **);
} kgr_cu;

/* dlopen the driver, resolve every entry point, cuInit(0), and check that
 * there is a device. 0, or -1 with a message that says what is missing. */
int kgr_cu_load(kgr_cu *cu, char *err, size_t errcap);
void kgr_cu_unload(kgr_cu *cu);
/* -1 with "what: CUDA error N (name)" unless rc is 0 */
int kgr_cu_check(const kgr_cu *cu, CUresult rc, const char *what, char *err, size_t errcap);
/* device 0's compute capability as 10 * major + minor (e.g. 90), its name
 * and multiprocessor count */
int kgr_cu_device(const kgr_cu *cu, int *sm, char *name, size_t namecap, int *n_sm, char *err, size_t errcap);

#endif
