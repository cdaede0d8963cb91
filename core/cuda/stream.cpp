#include "core/cuda/stream.h"

#include <utility>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"

namespace tessel::cuda {

namespace {
thread_local cudaStream_t t_current = nullptr;
}

cudaStream_t current_stream() { return t_current; }
void set_current_stream(cudaStream_t stream) { t_current = stream; }

Stream::Stream(int device) {
  if (device < 0) TESSEL_CUDA_CHECK(cudaGetDevice(&device));
  check_device(device, "Stream");
  DeviceGuard guard(device);
  TESSEL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  device_ = device;
}

Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);  // no throw from a destructor; an error here has no one to go to
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = std::exchange(o.stream_, nullptr);
    device_ = o.device_;
  }
  return *this;
}

void Stream::synchronize() const { TESSEL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

bool Stream::query() const {
  cudaError_t e = cudaStreamQuery(stream_);
  if (e == cudaErrorNotReady) return false;
  TESSEL_CUDA_CHECK(e);
  return true;
}

Event::Event(bool timing) {
  TESSEL_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}

void Event::record(cudaStream_t stream) { TESSEL_CUDA_CHECK(cudaEventRecord(event_, stream)); }
void Event::wait(cudaStream_t stream) const { TESSEL_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
void Event::synchronize() const { TESSEL_CUDA_CHECK(cudaEventSynchronize(event_)); }

bool Event::query() const {
  cudaError_t e = cudaEventQuery(event_);
  if (e == cudaErrorNotReady) return false;
  TESSEL_CUDA_CHECK(e);
  return true;
}

float Event::elapsed_ms(const Event& start) const {
  synchronize();
  float ms = 0;
  TESSEL_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

}  // namespace tessel::cuda
