// core/cuda/stream.h — the current stream, and RAII streams and events.
//
// Every tessel kernel launch and copy goes to current_stream(): the calling thread's stream,
// by default the legacy default stream (0). set_current_stream() switches this thread to a
// stream it created; the caching allocator keys its free lists by this stream (a block freed
// on one stream is reused only on that stream, where stream order makes it safe). The current
// stream is per thread, not per device: a program that drives two devices from one thread sets
// the stream that belongs to the device it is about to use.
//
// Synchronization is explicit: nothing here waits unless asked (Stream::synchronize,
// Event::synchronize, elapsed_ms); Event::wait makes one stream wait for another on the device.
#pragma once
#include <cuda_runtime.h>

namespace tessel {
class Tensor;
}

namespace tessel::cuda {

cudaStream_t current_stream();
void set_current_stream(cudaStream_t stream);

// Declares that work on `stream` uses t's memory (t allocated on another stream): when t's
// storage is freed, the caching allocator will not reuse the memory until the work queued on
// `stream` by then has finished (core/caching_allocator.h). Needed whenever a tensor made on
// one stream is read or written by kernels on another.
void record_stream(const ::tessel::Tensor& t, cudaStream_t stream);

// Makes `stream` current for this scope, restoring the previous one after.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t stream) : prev_(current_stream()) { set_current_stream(stream); }
  ~StreamGuard() { set_current_stream(prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  cudaStream_t prev_;
};

// An owned stream on `device` (-1: the current device), non-blocking with respect to the
// legacy default stream.
class Stream {
 public:
  explicit Stream(int device = -1);
  ~Stream();
  Stream(Stream&& o) noexcept : stream_(o.stream_), device_(o.device_) { o.stream_ = nullptr; }
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;  // waits until all work queued on the stream is done
  bool query() const;        // true when all work queued on the stream is done

 private:
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

// An owned event. With timing on, two recorded events give the elapsed device time between them.
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(Event&& o) noexcept : event_(o.event_) { o.event_ = nullptr; }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);  // marks the point reached by the work queued on `stream`
  void record() { record(current_stream()); }
  void wait(cudaStream_t stream) const;  // work queued on `stream` after this waits for the event
  void wait() const { wait(current_stream()); }
  void synchronize() const;  // the host waits for the event
  bool query() const;        // has the event completed?
  // Milliseconds from `start` to this event; both recorded and with timing on. Synchronizes.
  float elapsed_ms(const Event& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace tessel::cuda
