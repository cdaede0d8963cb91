// core/caching_allocator.h — a caching block allocator over a raw device allocator.
//
// Why: cudaMalloc and cudaFree are slow (cudaFree synchronizes the whole device), and a training
// step allocates and frees the same activation sizes every iteration. So freed blocks are kept
// and reused, and the raw allocator is called only when no cached block fits. The logic here
// knows nothing of CUDA: it is parameterized by a RawBackend (cudaMalloc/cudaFree in
// core/cuda/allocator.cpp, host memory in the tests), so every rule below is tested on the CPU.
//
// The rules (the design of PyTorch's CUDACachingAllocator, simplified):
// - Sizes round up to 512 bytes. Requests below 1 MiB are "small" and are carved from 2 MiB
//   segments; larger ones get a segment of their own (rounded up to 2 MiB), which later large
//   requests may split. Small and large blocks never share a segment, so small allocations
//   cannot fragment the big segments.
// - Streams: a block belongs to the stream it was allocated on; a freed block is reused only by
//   requests on that stream, where stream order makes the reuse safe without synchronizing.
//   A block also used on other streams is declared with record_stream(); when it is freed, an
//   event is recorded on each of those streams, and the block returns to the free list only
//   once they have all passed (polled at the next allocate; empty_cache and the destructor
//   wait) — the free is never held up, and the memory is never reused under a kernel that
//   still reads it.
// - Best fit: the smallest free block of the right pool and stream that is large enough; if the
//   rest is big enough to be useful (>= 512 B small, > 1 MiB large) it is split off as a free block.
// - Freeing merges the block with free neighbours of the same segment, so A B C allocated from
//   one segment and freed in any order become one free block again.
// - empty_cache() returns every wholly free segment to the backend.
// - A memory limit (0: none) caps reserved bytes. A request that would exceed it, or that the
//   backend cannot satisfy, first empties the cache and retries, then throws tessel::Error
//   "<name>: out of memory: requested X bytes, Y bytes in use, Z bytes reserved, limit L".
//
// Thread-safe (one mutex).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace tessel {

// Where segments come from. raw_alloc returns null when the memory is exhausted (never throws
// for that); raw_free takes only pointers raw_alloc returned.
struct RawBackend {
  virtual ~RawBackend() = default;
  virtual void* raw_alloc(size_t bytes) = 0;
  virtual void raw_free(void* p) = 0;
  // Events for record_stream (a cudaEvent_t for CUDA): record_event marks the work queued on
  // `stream` so far; event_done polls it, wait_event blocks until it is done, destroy_event
  // releases it. The defaults suit a backend without streams: nothing is ever pending.
  virtual void* record_event(uint64_t stream) {
    (void)stream;
    return nullptr;
  }
  virtual bool event_done(void* event) {
    (void)event;
    return true;
  }
  virtual void wait_event(void* event) { (void)event; }
  virtual void destroy_event(void* event) { (void)event; }
};

struct CachingAllocatorStats {
  int64_t current_bytes = 0;     // in live blocks (rounded sizes of the blocks handed out)
  int64_t peak_bytes = 0;        // maximum of current_bytes since creation or reset_peak()
  int64_t reserved_bytes = 0;    // in segments taken from the backend (live + cached)
  int64_t alloc_count = 0;       // allocate() calls that succeeded
  int64_t free_count = 0;        // deallocate() calls
  int64_t raw_alloc_count = 0;   // backend raw_alloc calls that succeeded
  int64_t raw_free_count = 0;    // backend raw_free calls
  int64_t segment_count = 0;     // segments held now
  int64_t free_block_count = 0;  // cached free blocks now
  int64_t pending_count = 0;     // freed blocks still waiting for other streams (record_stream)
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;                     // every block size is a multiple
  static constexpr size_t kSmallLimit = size_t{1} << 20;    // requests below this are small
  static constexpr size_t kSmallSegment = size_t{2} << 20;  // segment size of the small pool
  static constexpr size_t kLargeRound = size_t{2} << 20;    // large segments round up to this

  // `name` opens error messages ("cuda:0 allocator"); memory_limit 0 means none.
  CachingAllocator(RawBackend& backend, std::string name, int64_t memory_limit = 0);
  ~CachingAllocator();  // returns the free segments; live blocks are the caller's leak
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (0 allowed) usable on `stream` (an opaque id, e.g. a
  // cudaStream_t). Never null; throws tessel::Error when out of memory.
  void* allocate(size_t bytes, uint64_t stream = 0);
  void deallocate(void* p);  // p from allocate(); null is ignored; unknown pointers throw
  // The live block at p is also used by work on `stream` (its own stream needs no record).
  // Unknown pointers throw.
  void record_stream(void* p, uint64_t stream);
  void empty_cache();
  void set_memory_limit(int64_t bytes);  // 0: none; negative throws
  int64_t memory_limit() const;
  CachingAllocatorStats stats() const;
  void reset_peak();
  size_t block_size(void* p) const;  // the rounded size of a live block (0 if not live)

  static size_t round_size(size_t bytes);

 private:
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    uint64_t stream = 0;
    bool small = false;
    bool allocated = false;
    Block* prev = nullptr;  // neighbours inside the same segment (address order)
    Block* next = nullptr;
    std::vector<uint64_t> other_streams;  // record_stream() while live
  };
  struct Pending {  // freed, waiting for the events recorded on its other streams
    Block* block;
    std::vector<void*> events;
  };
  struct ByStreamSize {  // free-list order: pool, stream, size, address
    bool operator()(const Block* a, const Block* b) const;
  };

  Block* find_free_locked(size_t size, bool small, uint64_t stream);
  void free_block_locked(Block* b);        // merge with free neighbours, into the free set
  void process_pending_locked(bool wait);  // free the pending blocks whose events passed
  Block* new_segment_locked(size_t size, bool small, uint64_t stream, size_t requested);
  void release_free_segments_locked();
  [[noreturn]] void fail_oom_locked(size_t requested, const char* why);

  RawBackend& backend_;
  std::string name_;
  mutable std::mutex mu_;
  int64_t limit_ = 0;
  std::set<Block*, ByStreamSize> free_;
  std::unordered_map<void*, Block*> live_;
  std::vector<Pending> pending_;
  CachingAllocatorStats st_;
};

}  // namespace tessel
