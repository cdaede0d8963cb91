#include "core/caching_allocator.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"

namespace tessel {

bool CachingAllocator::ByStreamSize::operator()(const Block* a, const Block* b) const {
  return std::tie(a->small, a->stream, a->size, a->ptr) < std::tie(b->small, b->stream, b->size, b->ptr);
}

CachingAllocator::CachingAllocator(RawBackend& backend, std::string name, int64_t memory_limit)
    : backend_(backend), name_(std::move(name)) {
  set_memory_limit(memory_limit);
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    process_pending_locked(/*wait=*/true);
  } catch (...) {  // a failing device at teardown: the pending blocks are simply not returned
  }
  release_free_segments_locked();
  // What is left is live blocks and the free pieces of their segments. The live memory belongs
  // to whoever still holds it, so only the bookkeeping goes.
  for (Block* b : free_) delete b;
  for (auto& [p, b] : live_) delete b;
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) return kRound;
  if (bytes > SIZE_MAX - kRound) return SIZE_MAX;  // unsatisfiable; allocate() reports it
  return (bytes + kRound - 1) / kRound * kRound;
}

void* CachingAllocator::allocate(size_t bytes, uint64_t stream) {
  const size_t size = round_size(bytes);
  const bool small = size < kSmallLimit;
  std::lock_guard<std::mutex> lock(mu_);
  if (size == SIZE_MAX) fail_oom_locked(bytes, "the request cannot be addressed");
  if (!pending_.empty()) process_pending_locked(/*wait=*/false);
  Block* b = find_free_locked(size, small, stream);
  if (!b) b = new_segment_locked(size, small, stream, bytes);
  // Split off the rest when it is big enough to serve another request of the same pool; a
  // smaller rest stays inside the block as slack (counted in its size).
  const size_t rest = b->size - size;
  if (small ? rest >= kRound : rest > kSmallLimit) {
    auto* r = new Block{b->ptr + size, rest, stream, small, false, b, b->next, {}};
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    free_.insert(r);
  }
  b->allocated = true;
  live_.emplace(b->ptr, b);
  st_.current_bytes += static_cast<int64_t>(b->size);
  if (st_.current_bytes > st_.peak_bytes) st_.peak_bytes = st_.current_bytes;
  ++st_.alloc_count;
  st_.free_block_count = static_cast<int64_t>(free_.size());
  return b->ptr;
}

void CachingAllocator::deallocate(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) fail(name_.c_str(), "deallocate: ", p, " is not a live block of this allocator");
  Block* b = it->second;
  live_.erase(it);
  ++st_.free_count;
  if (!b->other_streams.empty()) {
    // Used on other streams: it stays allocated (so no neighbour merges into it) and counted in
    // use until the work queued there so far has run.
    Pending pend{b, {}};
    for (uint64_t s : b->other_streams) pend.events.push_back(backend_.record_event(s));
    b->other_streams.clear();
    pending_.push_back(std::move(pend));
    st_.pending_count = static_cast<int64_t>(pending_.size());
    return;
  }
  free_block_locked(b);
}

void CachingAllocator::record_stream(void* p, uint64_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) fail(name_.c_str(), "record_stream: ", p, " is not a live block of this allocator");
  Block* b = it->second;
  if (stream == b->stream) return;
  if (std::find(b->other_streams.begin(), b->other_streams.end(), stream) == b->other_streams.end())
    b->other_streams.push_back(stream);
}

void CachingAllocator::process_pending_locked(bool wait) {
  for (size_t i = 0; i < pending_.size();) {
    Pending& pend = pending_[i];
    bool done = true;
    for (void* e : pend.events) {
      if (wait) backend_.wait_event(e);
      done = done && (wait || backend_.event_done(e));
    }
    if (!done) {
      ++i;
      continue;
    }
    for (void* e : pend.events) backend_.destroy_event(e);
    Block* b = pend.block;
    if (i + 1 != pending_.size()) pending_[i] = std::move(pending_.back());
    pending_.pop_back();
    free_block_locked(b);
  }
  st_.pending_count = static_cast<int64_t>(pending_.size());
}

void CachingAllocator::free_block_locked(Block* b) {
  b->allocated = false;
  st_.current_bytes -= static_cast<int64_t>(b->size);
  // Merge with free neighbours; a neighbour leaves the free set before its size changes (the
  // set is ordered by size).
  if (Block* a = b->prev; a && !a->allocated) {
    free_.erase(a);
    a->size += b->size;
    a->next = b->next;
    if (b->next) b->next->prev = a;
    delete b;
    b = a;
  }
  if (Block* c = b->next; c && !c->allocated) {
    free_.erase(c);
    b->size += c->size;
    b->next = c->next;
    if (c->next) c->next->prev = b;
    delete c;
  }
  free_.insert(b);
  st_.free_block_count = static_cast<int64_t>(free_.size());
}

CachingAllocator::Block* CachingAllocator::find_free_locked(size_t size, bool small, uint64_t stream) {
  Block probe{nullptr, size, stream, small, false, nullptr, nullptr, {}};
  auto it = free_.lower_bound(&probe);
  if (it == free_.end() || (*it)->small != small || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  free_.erase(it);
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment_locked(size_t size, bool small, uint64_t stream,
                                                              size_t requested) {
  size_t seg = small ? kSmallSegment : size;
  if (!small) {
    if (seg > SIZE_MAX - kLargeRound) fail_oom_locked(requested, "the request cannot be addressed");
    seg = (seg + kLargeRound - 1) / kLargeRound * kLargeRound;
  }
  auto over_limit = [&] {
    return limit_ > 0 &&
           (seg > static_cast<uint64_t>(limit_) || st_.reserved_bytes + static_cast<int64_t>(seg) > limit_);
  };
  if (over_limit()) {
    process_pending_locked(/*wait=*/true);  // memory is short: wait for blocks other streams hold
    release_free_segments_locked();
    if (over_limit()) fail_oom_locked(requested, "a new segment would pass the memory limit");
  }
  void* p = backend_.raw_alloc(seg);
  if (!p) {  // the device is full: give back what is cached and try once more
    process_pending_locked(/*wait=*/true);
    release_free_segments_locked();
    p = backend_.raw_alloc(seg);
    if (!p) fail_oom_locked(requested, "the device has no memory left for a new segment");
  }
  ++st_.raw_alloc_count;
  ++st_.segment_count;
  st_.reserved_bytes += static_cast<int64_t>(seg);
  return new Block{static_cast<char*>(p), seg, stream, small, false, nullptr, nullptr, {}};
}

void CachingAllocator::release_free_segments_locked() {
  for (auto it = free_.begin(); it != free_.end();) {
    Block* b = *it;
    if (b->prev || b->next) {  // part of a segment that still has live blocks
      ++it;
      continue;
    }
    it = free_.erase(it);
    backend_.raw_free(b->ptr);
    ++st_.raw_free_count;
    --st_.segment_count;
    st_.reserved_bytes -= static_cast<int64_t>(b->size);
    delete b;
  }
  st_.free_block_count = static_cast<int64_t>(free_.size());
}

void CachingAllocator::fail_oom_locked(size_t requested, const char* why) {
  std::string limit = limit_ > 0 ? std::to_string(limit_) + " bytes" : std::string("none");
  fail(name_.c_str(), "out of memory: requested ", requested, " bytes, ", st_.current_bytes, " bytes in use, ",
       st_.reserved_bytes, " bytes reserved, limit ", limit, " (", why, ")");
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  process_pending_locked(/*wait=*/true);
  release_free_segments_locked();
}

void CachingAllocator::set_memory_limit(int64_t bytes) {
  check(bytes >= 0, name_.c_str(), "memory limit must be >= 0 bytes (0: none), got ", bytes);
  std::lock_guard<std::mutex> lock(mu_);
  limit_ = bytes;
}

int64_t CachingAllocator::memory_limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limit_;
}

CachingAllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.peak_bytes = st_.current_bytes;
}

size_t CachingAllocator::block_size(void* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  return it == live_.end() ? 0 : it->second->size;
}

}  // namespace tessel
