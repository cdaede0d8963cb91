// core/allocator.h — the CPU allocator: 64-byte aligned blocks, cached and reused.
//
// Why cache: touching fresh memory costs a page fault per 4 KiB page (about 11 µs each on our
// machines), so a training step that allocates its activations anew each iteration would spend
// most of its time in the kernel. Freed blocks go to per-size-class free lists and the next
// request of that class reuses one, so a steady-state step faults no new pages.
//
// Size classes: requests round up to 64 bytes, then to the next of 4 steps per power of two
// (1, 1.25, 1.5, 1.75 x 2^k), so at most 25% of a block is slack. Blocks of 4 MiB and more are
// 2 MiB aligned and advised to use transparent huge pages (one fault per 2 MiB).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessel {

struct AllocatorStats {
  int64_t current_bytes = 0;   // handed out and not yet freed (rounded sizes)
  int64_t peak_bytes = 0;      // maximum of current_bytes since start or reset_peak()
  int64_t cached_bytes = 0;    // freed, kept for reuse
  int64_t alloc_count = 0;     // allocate() calls
  int64_t os_alloc_count = 0;  // of which went to the OS (cache misses)
};

namespace cpu_allocator {
void* allocate(size_t nbytes);            // never null; throws tessel::Error when out of memory
void deallocate(void* p, size_t nbytes);  // nbytes: the size passed to allocate
size_t round_size(size_t nbytes);         // the size class a request lands in
AllocatorStats stats();
void reset_peak();
void empty_cache();  // return every cached block to the OS
// Cached bytes above this limit are returned to the OS on free (default 8 GiB, env
// TESSEL_CPU_CACHE_LIMIT_MB).
void set_cache_limit(int64_t bytes);
int64_t cache_limit();
}  // namespace cpu_allocator

}  // namespace tessel
