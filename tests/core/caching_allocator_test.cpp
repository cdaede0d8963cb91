// tests/core/caching_allocator_test.cpp — the device-agnostic caching allocator, driven by a
// fake backend that hands out host memory and counts its calls.
#include "core/caching_allocator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "tests/helpers.h"

namespace {

using tessel::CachingAllocator;

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

struct FakeBackend : tessel::RawBackend {
  size_t capacity = SIZE_MAX;  // raw_alloc fails (null) beyond this many outstanding bytes
  size_t outstanding = 0;
  int allocs = 0, frees = 0, failures = 0;
  std::map<void*, size_t> live;

  void* raw_alloc(size_t bytes) override {
    if (bytes > capacity - outstanding) {
      ++failures;
      return nullptr;
    }
    void* p = std::malloc(bytes);
    REQUIRE(p != nullptr);
    live[p] = bytes;
    outstanding += bytes;
    ++allocs;
    return p;
  }
  void raw_free(void* p) override {
    auto it = live.find(p);
    REQUIRE(it != live.end());  // only pointers raw_alloc returned
    outstanding -= it->second;
    live.erase(it);
    ++frees;
    std::free(p);
  }
  ~FakeBackend() override {
    for (auto& [p, n] : live) std::free(p);
  }

  // Events: each records the stream it was made on; the test decides when a stream's work is
  // done (done_streams), as a GPU would finish it.
  struct Event {
    uint64_t stream;
    bool destroyed = false;
  };
  std::vector<std::unique_ptr<Event>> events;
  std::set<uint64_t> done_streams;
  int waits = 0;
  void* record_event(uint64_t stream) override {
    events.push_back(std::make_unique<Event>(Event{stream}));
    return events.back().get();
  }
  bool event_done(void* e) override {
    auto* ev = static_cast<Event*>(e);
    REQUIRE(!ev->destroyed);
    return done_streams.count(ev->stream) > 0;
  }
  void wait_event(void* e) override {
    auto* ev = static_cast<Event*>(e);
    REQUIRE(!ev->destroyed);
    ++waits;
    done_streams.insert(ev->stream);  // waiting finishes that stream's work
  }
  void destroy_event(void* e) override {
    auto* ev = static_cast<Event*>(e);
    REQUIRE(!ev->destroyed);
    ev->destroyed = true;
  }
  int live_events() const {
    int n = 0;
    for (auto& e : events) n += !e->destroyed;
    return n;
  }
};

char* as_bytes(void* p) { return static_cast<char*>(p); }

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("caching allocator: rounding and reuse without new raw allocations") {
    CHECK(CachingAllocator::round_size(0) == 512);
    CHECK(CachingAllocator::round_size(1) == 512);
    CHECK(CachingAllocator::round_size(512) == 512);
    CHECK(CachingAllocator::round_size(513) == 1024);
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    void* p = a.allocate(1000);
    CHECK(a.block_size(p) == 1024);
    CHECK(be.allocs == 1);
    CHECK(be.live.begin()->second == CachingAllocator::kSmallSegment);
    a.deallocate(p);
    for (int i = 0; i < 10; ++i) {  // same size, freed each time: always the cached block
      void* q = a.allocate(1000);
      CHECK(q == p);
      a.deallocate(q);
    }
    void* big = a.allocate(5 * MiB);
    CHECK(be.allocs == 2);
    CHECK(be.live.at(big) == 6 * MiB);  // large segments round up to 2 MiB
    a.deallocate(big);
    void* big2 = a.allocate(5 * MiB + 7);
    CHECK(big2 == big);
    CHECK(be.allocs == 2);
    a.deallocate(big2);
    // The whole memory written: the blocks really are that large.
    void* w = a.allocate(3 * MiB);
    std::fill(as_bytes(w), as_bytes(w) + 3 * MiB, char(7));
    a.deallocate(w);
  }

  TEST_CASE("caching allocator: split and merge within one segment") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    void* A = a.allocate(100 * KiB);
    void* B = a.allocate(200 * KiB);
    void* C = a.allocate(300 * KiB);
    CHECK(be.allocs == 1);  // all three from one 2 MiB small segment, in address order
    CHECK(as_bytes(B) == as_bytes(A) + 100 * KiB);
    CHECK(as_bytes(C) == as_bytes(B) + 200 * KiB);
    CHECK(a.stats().free_block_count == 1);  // the tail of the segment
    a.deallocate(B);
    CHECK(a.stats().free_block_count == 2);  // B's hole and the tail: not adjacent
    a.deallocate(A);
    CHECK(a.stats().free_block_count == 2);  // A merged with B
    a.deallocate(C);
    CHECK(a.stats().free_block_count == 1);  // everything merged back into one block
    CHECK(a.stats().segment_count == 1);
    // The merged block serves a request as big as the whole segment's small range.
    void* D = a.allocate(1 * MiB - 512);
    CHECK(D == A);
    CHECK(be.allocs == 1);
    // A freed middle block is reused by a request that fits it (best fit), not the tail.
    void* E = a.allocate(64 * KiB);
    a.deallocate(D);
    CHECK(as_bytes(E) == as_bytes(D) + 1 * MiB - 512);  // E came from the split-off rest
    void* F = a.allocate(2 * MiB - 64 * KiB);           // large: never from the small pool
    CHECK(be.allocs == 2);
    a.deallocate(E);
    a.deallocate(F);
    CHECK(a.stats().current_bytes == 0);
    CHECK(a.stats().free_block_count == 2);  // each segment whole again
    a.empty_cache();
    CHECK(be.live.empty());
    CHECK(a.stats().reserved_bytes == 0);
  }

  TEST_CASE("caching allocator: large blocks split when the rest is worth it") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    void* big = a.allocate(20 * MiB);
    a.deallocate(big);
    void* x = a.allocate(8 * MiB);  // from the cached 20 MiB segment; the 12 MiB rest is split off
    void* y = a.allocate(8 * MiB);
    CHECK(be.allocs == 1);
    CHECK(x == big);
    CHECK(as_bytes(y) == as_bytes(x) + 8 * MiB);
    void* z = a.allocate(3 * MiB + 512);  // 4 MiB - 512 left: split again (rest > 1 MiB)
    CHECK(be.allocs == 1);
    a.deallocate(x);
    a.deallocate(z);
    a.deallocate(y);
    CHECK(a.stats().free_block_count == 1);
    CHECK(a.stats().current_bytes == 0);
    // A large request never comes from the small pool, and a small one never from the large pool.
    void* s = a.allocate(4 * KiB);
    CHECK(be.allocs == 2);
    a.deallocate(s);
  }

  TEST_CASE("caching allocator: streams keep separate free lists") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    void* p = a.allocate(4096, /*stream=*/1);
    a.deallocate(p);
    void* q = a.allocate(4096, /*stream=*/2);
    CHECK(q != p);          // stream 2 may not take stream 1's freed block
    CHECK(be.allocs == 2);  // it gets a segment of its own
    void* r = a.allocate(4096, /*stream=*/1);
    CHECK(r == p);
    a.deallocate(q);
    a.deallocate(r);
    CHECK(a.stats().segment_count == 2);
  }

  TEST_CASE("caching allocator: stats are exact") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    void* p = a.allocate(1);
    void* q = a.allocate(3 * MiB);
    auto s = a.stats();
    // q's segment is 4 MiB; the 1 MiB rest is too small to split off, so q's block holds it.
    CHECK(a.block_size(q) == 4 * MiB);
    CHECK(s.current_bytes == static_cast<int64_t>(512 + 4 * MiB));
    CHECK(s.peak_bytes == s.current_bytes);
    CHECK(s.reserved_bytes == static_cast<int64_t>(2 * MiB + 4 * MiB));
    CHECK(s.alloc_count == 2);
    CHECK(s.raw_alloc_count == 2);
    CHECK(s.segment_count == 2);
    a.deallocate(q);
    s = a.stats();
    CHECK(s.current_bytes == 512);
    CHECK(s.peak_bytes == static_cast<int64_t>(512 + 4 * MiB));
    CHECK(s.reserved_bytes == static_cast<int64_t>(6 * MiB));  // cached, still reserved
    CHECK(s.free_count == 1);
    a.reset_peak();
    CHECK(a.stats().peak_bytes == 512);
    a.empty_cache();  // the large segment is wholly free; the small one holds p
    s = a.stats();
    CHECK(s.reserved_bytes == static_cast<int64_t>(2 * MiB));
    CHECK(s.raw_free_count == 1);
    CHECK(be.outstanding == 2 * MiB);
    a.deallocate(p);
    a.empty_cache();
    CHECK(a.stats().reserved_bytes == 0);
    CHECK(be.live.empty());
    CHECK_THROWS_WITH_AS(a.deallocate(&be), doctest::Contains("not a live block"), tessel::Error);
  }

  TEST_CASE("caching allocator: the memory limit fails with a clear message") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator", 8 * MiB);
    void* p = a.allocate(5 * MiB);  // a 6 MiB segment, all of it p's block (the rest is slack)
    CHECK_THROWS_WITH_AS(a.allocate(3 * MiB), doctest::Contains("out of memory: requested 3145728 bytes"),
                         tessel::Error);
    try {
      a.allocate(3 * MiB);
    } catch (const tessel::Error& e) {
      std::string m = e.what();
      CHECK(m.find("test allocator") == 0);
      CHECK(m.find("6291456 bytes in use") != std::string::npos);
      CHECK(m.find("6291456 bytes reserved") != std::string::npos);
      CHECK(m.find("limit 8388608 bytes") != std::string::npos);
    }
    CHECK(be.allocs == 1);  // the limit is checked before the backend is asked
    a.deallocate(p);
    void* q = a.allocate(1 * MiB + 512);  // fits in the cached segment
    CHECK(be.allocs == 1);
    a.deallocate(q);
    // Over the limit only because of the cache: the cache is emptied and the request succeeds.
    void* r = a.allocate(7 * MiB);
    CHECK(be.frees == 1);
    CHECK(be.allocs == 2);
    a.deallocate(r);
    a.set_memory_limit(0);  // none
    void* s = a.allocate(64 * MiB);
    a.deallocate(s);
    CHECK_THROWS_WITH_AS(a.set_memory_limit(-1), doctest::Contains(">= 0"), tessel::Error);
    CHECK_THROWS_WITH_AS(a.allocate(SIZE_MAX), doctest::Contains("out of memory"), tessel::Error);
  }

  TEST_CASE("caching allocator: backend out of memory empties the cache and retries") {
    FakeBackend be;
    be.capacity = 10 * MiB;
    CachingAllocator a(be, "test allocator");
    void* p = a.allocate(4 * MiB);
    void* small = a.allocate(10 * KiB);  // 2 MiB small segment: 6 MiB outstanding
    a.deallocate(p);                     // cached, not returned
    a.deallocate(small);
    void* q = a.allocate(8 * MiB);  // needs 8 MiB: only after the 6 MiB cache goes back
    CHECK(be.failures == 1);
    CHECK(be.frees == 2);
    CHECK(a.stats().reserved_bytes == static_cast<int64_t>(8 * MiB));
    // Nothing cached left to give back: a clear error, and the allocator still works after it.
    CHECK_THROWS_WITH_AS(a.allocate(4 * MiB),
                         doctest::Contains("out of memory: requested 4194304 bytes, 8388608 bytes in use"),
                         tessel::Error);
    CHECK_THROWS_WITH_AS(a.allocate(4 * MiB), doctest::Contains("no memory left"), tessel::Error);
    a.deallocate(q);
    void* r = a.allocate(2 * MiB + 512);
    a.deallocate(r);
    CHECK(a.stats().current_bytes == 0);
  }

  TEST_CASE("caching allocator: random stress keeps blocks disjoint and stats consistent") {
    FakeBackend be;
    CachingAllocator a(be, "test allocator");
    std::mt19937_64 rng(42);
    struct Live {
      char* p;
      size_t n;
      uint64_t stream;
      char tag;
    };
    std::vector<Live> live;
    auto check_disjoint = [&] {
      std::vector<std::pair<char*, size_t>> v;
      for (auto& l : live) v.push_back({l.p, a.block_size(l.p)});
      std::sort(v.begin(), v.end());
      for (size_t i = 1; i < v.size(); ++i) REQUIRE(v[i - 1].first + v[i - 1].second <= v[i].first);
    };
    for (int step = 0; step < 2000; ++step) {
      if (live.empty() || rng() % 100 < 55) {
        size_t n = rng() % 8 == 0 ? rng() % (6 * MiB) : rng() % (64 * KiB);
        uint64_t stream = rng() % 3;
        char* p = as_bytes(a.allocate(n, stream));
        char tag = static_cast<char>(step);
        std::fill(p, p + n, tag);
        live.push_back({p, n, stream, tag});
      } else {
        size_t k = rng() % live.size();
        Live l = live[k];
        // Nobody else wrote into this block while it was live.
        REQUIRE(std::all_of(l.p, l.p + l.n, [&](char c) { return c == l.tag; }));
        a.deallocate(l.p);
        live[k] = live.back();
        live.pop_back();
      }
      if (step % 100 == 0) {
        check_disjoint();
        auto s = a.stats();
        int64_t sum = 0;
        for (auto& l : live) sum += static_cast<int64_t>(a.block_size(l.p));
        REQUIRE(s.current_bytes == sum);
        REQUIRE(s.current_bytes <= s.reserved_bytes);
        REQUIRE(s.peak_bytes >= s.current_bytes);
        REQUIRE(s.reserved_bytes == static_cast<int64_t>(be.outstanding));
        REQUIRE(s.segment_count == static_cast<int64_t>(be.live.size()));
      }
      if (step % 700 == 0) a.empty_cache();
    }
    for (auto& l : live) a.deallocate(l.p);
    auto s = a.stats();
    CHECK(s.current_bytes == 0);
    CHECK(s.free_block_count == s.segment_count);  // every segment merged back to one block
    a.empty_cache();
    CHECK(be.live.empty());
    CHECK(a.stats().reserved_bytes == 0);
  }

  TEST_CASE("caching allocator: a block used on another stream (record_stream) waits for it") {
    FakeBackend be;
    CachingAllocator a(be, "test");
    constexpr uint64_t s1 = 1, s2 = 2, s3 = 3;
    void* p = a.allocate(100 * KiB, s1);
    a.record_stream(p, s2);
    a.record_stream(p, s2);  // once is enough
    a.record_stream(p, s1);  // its own stream: nothing to record
    a.deallocate(p);
    CHECK(be.events.size() == 1);  // one event, on s2
    CHECK(be.events[0]->stream == s2);
    CHECK(a.stats().pending_count == 1);
    CHECK(a.stats().current_bytes == static_cast<int64_t>(100 * KiB));  // still in use
    // s2 has not finished: the same request on s1 must get other memory.
    void* q = a.allocate(100 * KiB, s1);
    CHECK(q != p);
    // Once s2 is done, the next allocation frees the block, and it is reused.
    be.done_streams.insert(s2);
    a.deallocate(q);
    void* r = a.allocate(100 * KiB, s1);
    CHECK(a.stats().pending_count == 0);
    CHECK(be.live_events() == 0);
    CHECK((r == p || r == q));
    a.deallocate(r);
    CHECK(a.stats().current_bytes == 0);

    // Two other streams: free only after both; empty_cache waits for them and returns the segment.
    void* big = a.allocate(3 * MiB, s1);
    a.record_stream(big, s2);
    a.record_stream(big, s3);
    be.done_streams.clear();
    a.deallocate(big);
    be.done_streams.insert(s2);
    void* other = a.allocate(3 * MiB, s1);
    CHECK(other != big);  // s3 still running
    CHECK(a.stats().pending_count == 1);
    a.deallocate(other);
    const int waits = be.waits;
    a.empty_cache();
    CHECK(be.waits > waits);
    CHECK(a.stats().pending_count == 0);
    CHECK(be.live_events() == 0);
    CHECK(be.live.empty());
    CHECK(a.stats().reserved_bytes == 0);
    CHECK_THROWS_WITH_AS(a.record_stream(big, s2), doctest::Contains("record_stream"), tessel::Error);
  }

  TEST_CASE("caching allocator: at the memory limit, pending blocks are waited for before failing") {
    FakeBackend be;
    CachingAllocator a(be, "test", static_cast<int64_t>(4 * MiB));
    void* p = a.allocate(3 * MiB, 1);
    a.record_stream(p, 2);
    a.deallocate(p);
    // A second 3 MiB segment would pass the limit; the pending one is waited for, returned, and
    // its memory serves the request.
    void* q = a.allocate(3 * MiB, 1);
    CHECK(be.waits == 1);
    CHECK(a.stats().pending_count == 0);
    CHECK(a.stats().reserved_bytes <= static_cast<int64_t>(4 * MiB));
    a.deallocate(q);
  }
}
