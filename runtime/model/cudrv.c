/*
 * cudrv.c — the CUDA driver API through dlopen (cudrv.h).
 */
#include "cudrv.h"
#include "rt.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int kgr_cu_check(const kgr_cu *cu, CUresult rc, const char *what, char *err, size_t errcap)
{
    if (rc == 0) return 0;
    const char *s = NULL;
    if (cu->GetErrorString) cu->GetErrorString(rc, &s);
    if (!s) /* the stub library and old drivers name nothing */
        s = rc == 34 ? "CUDA_ERROR_STUB_LIBRARY: the toolkit's stub, not a driver" : rc == 35 ? "CUDA_ERROR_INSUFFICIENT_DRIVER"
          : rc == 100 ? "CUDA_ERROR_NO_DEVICE" : rc == 209 ? "CUDA_ERROR_NO_BINARY_FOR_GPU" : NULL;
    return kgr_msg(err, errcap, "%s: CUDA error %d (%s)", what, rc, s ? s : "unknown");
}

void kgr_cu_unload(kgr_cu *cu)
{
    if (cu->lib) dlclose(cu->lib);
    memset(cu, 0, sizeof *cu);
}

int kgr_cu_load(kgr_cu *cu, char *err, size_t errcap)
{
    memset(cu, 0, sizeof *cu);
    const char *env = getenv("KGEN_LIBCUDA"), *name = env && *env ? env : "libcuda.so.1";
    cu->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib)
        return kgr_msg(err, errcap,
                       "this model was compiled for CUDA, but the CUDA driver cannot be loaded (%s): a CUDA model "
                       "needs an NVIDIA GPU and its driver (or recompile it for the CPU: kgen compile without --target)",
                       dlerror());
    static const struct { size_t off; const char *sym; } fns[] = {
#define F(field, sym) {offsetof(kgr_cu, field), sym}
        F(Init, "cuInit"), F(DriverGetVersion, "cuDriverGetVersion"), F(DeviceGetCount, "cuDeviceGetCount"),
        F(DeviceGet, "cuDeviceGet"), F(DeviceGetAttribute, "cuDeviceGetAttribute"), F(DeviceGetName, "cuDeviceGetName"),
        F(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"), F(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
        F(CtxSetCurrent, "cuCtxSetCurrent"), F(ModuleLoadData, "cuModuleLoadData"), F(ModuleUnload, "cuModuleUnload"),
        F(ModuleGetFunction, "cuModuleGetFunction"), F(MemAlloc, "cuMemAlloc_v2"), F(MemFree, "cuMemFree_v2"),
        F(MemAllocHost, "cuMemAllocHost_v2"), F(MemFreeHost, "cuMemFreeHost"), F(MemsetD8, "cuMemsetD8_v2"),
        F(MemcpyHtoD, "cuMemcpyHtoD_v2"), F(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
        F(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"), F(StreamCreate, "cuStreamCreate"),
        F(StreamDestroy, "cuStreamDestroy_v2"), F(StreamSynchronize, "cuStreamSynchronize"),
        F(StreamBeginCapture, "cuStreamBeginCapture_v2"), F(StreamEndCapture, "cuStreamEndCapture"),
        F(GraphInstantiate, "cuGraphInstantiateWithFlags"), F(GraphLaunch, "cuGraphLaunch"),
        F(GraphExecDestroy, "cuGraphExecDestroy"), F(GraphDestroy, "cuGraphDestroy"), F(LaunchKernel, "cuLaunchKernel"),
        F(GetErrorString, "cuGetErrorString"),
#undef F
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        void *f = dlsym(cu->lib, fns[i].sym);
        if (!f) {
            kgr_msg(err, errcap, "%s: the CUDA driver lacks %s (too old? kgen needs CUDA 12 or later)", name, fns[i].sym);
            kgr_cu_unload(cu);
            return -1;
        }
        memcpy((char *)cu + fns[i].off, &f, sizeof f);
    }
    int n = 0;
    if (kgr_cu_check(cu, cu->Init(0), "cuInit (no usable NVIDIA GPU or driver?)", err, errcap) ||
        kgr_cu_check(cu, cu->DeviceGetCount(&n), "cuDeviceGetCount", err, errcap)) {
        kgr_cu_unload(cu);
        return -1;
    }
    if (n < 1) {
        kgr_cu_unload(cu);
        return kgr_msg(err, errcap, "the CUDA driver loaded but finds no GPU");
    }
    return 0;
}

int kgr_cu_device(const kgr_cu *cu, int *sm, char *name, size_t namecap, int *n_sm, char *err, size_t errcap)
{
    CUdevice d;
    int ma = 0, mi = 0;
    if (kgr_cu_check(cu, cu->DeviceGet(&d, 0), "cuDeviceGet", err, errcap) ||
        kgr_cu_check(cu, cu->DeviceGetAttribute(&ma, KGR_CU_ATTR_CC_MAJOR, d), "cuDeviceGetAttribute", err, errcap) ||
        kgr_cu_check(cu, cu->DeviceGetAttribute(&mi, KGR_CU_ATTR_CC_MINOR, d), "cuDeviceGetAttribute", err, errcap))
        return -1;
    *sm = 10 * ma + mi;
    if (n_sm && kgr_cu_check(cu, cu->DeviceGetAttribute(n_sm, KGR_CU_ATTR_SM_COUNT, d), "cuDeviceGetAttribute", err, errcap))
        return -1;
    if (name && namecap && cu->DeviceGetName(name, (int)namecap, d)) name[0] = 0;
    return 0;
}
