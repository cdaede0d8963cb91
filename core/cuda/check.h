// core/cuda/check.h — every CUDA runtime call and kernel launch checked; failures become tessel::Error.
#pragma once
#include <cuda_runtime.h>

#include "core/error.h"
#define TESSEL_CUDA_CHECK(call)                                                                \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) ::tessel::fail("cuda", #call, " failed: ", cudaGetErrorString(e_)); \
  } while (0)
#define TESSEL_CUDA_CHECK_LAUNCH(op)                                                             \
  do {                                                                                           \
    cudaError_t e_ = cudaGetLastError();                                                         \
    if (e_ != cudaSuccess) ::tessel::fail(op, "kernel launch failed: ", cudaGetErrorString(e_)); \
  } while (0)
