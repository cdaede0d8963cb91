// core/cuda.h — what the rest of tessel (and a program embedding it) asks about CUDA.
//
// These functions exist in every build. Without the CUDA backend (TESSEL_HAVE_CUDA unset) or
// without a device, cuda_available() is false and the rest say so with a tessel::Error; they
// never abort. With the backend, core/cuda/ implements them over the CUDA runtime.
#pragma once
#include <cstdint>
#include <string>

namespace tessel {

bool cuda_built();                            // tessel was compiled with the CUDA backend
bool cuda_available();                        // built, and the runtime sees at least one device (never throws)
int cuda_device_count();                      // 0 when not built or no device (never throws)
std::string cuda_device_name(int index = 0);  // throws tessel::Error when there is no such device
void cuda_synchronize();                      // waits for all work on the current device; throws on a pending error

}  // namespace tessel
