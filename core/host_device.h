// core/host_device.h — marks a function callable from both host and CUDA device code, so a
// scalar formula (e.g. apply_elementwise) is written once and used by every backend.
#pragma once

#ifdef __CUDACC__
#define TESSEL_HOST_DEVICE __host__ __device__
#else
#define TESSEL_HOST_DEVICE
#endif
