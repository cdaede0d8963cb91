// data/loader and data/text: deterministic shuffles, every sample once per epoch, the same
// batches with and without the prefetch thread, resuming mid-epoch, errors raised inside the
// worker reaching the caller, and the byte-level text dataset.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "tests/helpers.h"

using namespace tessel;

namespace {

// x row i holds i (as f32, two columns: i and -i); y[i] = i.
std::shared_ptr<TensorDataset> numbered(int64_t n) {
  std::vector<double> x;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<double>(i));
    x.push_back(-static_cast<double>(i));
  }
  std::vector<int64_t> y(static_cast<size_t>(n));
  std::iota(y.begin(), y.end(), 0);
  return std::make_shared<TensorDataset>(from_vector(x, {n, 2}), from_vector_i64(y, {n}));
}

std::vector<std::vector<int64_t>> epoch_batches(DataLoader& loader, int64_t epoch, int64_t first = 0) {
  std::vector<std::vector<int64_t>> out;
  loader.start_epoch(epoch, first);
  while (auto b = loader.next()) {
    // The batch's contents are the samples it says it holds.
    std::vector<int64_t> y = b->y.to_vector<int64_t>();
    REQUIRE(y == b->indices);
    std::vector<float> x = b->x.to_vector<float>();
    for (size_t i = 0; i < y.size(); ++i) {
      REQUIRE(x[2 * i] == static_cast<float>(y[i]));
      REQUIRE(x[2 * i + 1] == -static_cast<float>(y[i]));
    }
    out.push_back(y);
  }
  return out;
}

// Throws when asked for sample `bad`.
class Faulty : public Dataset {
 public:
  explicit Faulty(int64_t bad) : inner_(numbered(20)), bad_(bad) {}
  int64_t size() const override { return inner_->size(); }
  Batch get_batch(const std::vector<int64_t>& indices) const override {
    for (int64_t i : indices)
      if (i == bad_) fail("Faulty", "sample ", i, " is unreadable");
    return inner_->get_batch(indices);
  }

 private:
  std::shared_ptr<TensorDataset> inner_;
  int64_t bad_;
};

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("loader: every sample exactly once per epoch, batch sizes, drop_last, no shuffle") {
    auto ds = numbered(103);
    for (bool drop_last : {false, true}) {
      for (int64_t prefetch : {0, 2}) {
        CAPTURE(drop_last);
        CAPTURE(prefetch);
        DataLoader loader(ds, {.batch_size = 10, .drop_last = drop_last, .seed = 7, .prefetch = prefetch});
        CHECK(loader.batches_per_epoch() == (drop_last ? 10 : 11));
        for (int64_t epoch = 0; epoch < 3; ++epoch) {
          auto batches = epoch_batches(loader, epoch);
          REQUIRE(static_cast<int64_t>(batches.size()) == loader.batches_per_epoch());
          std::vector<int64_t> all;
          for (size_t b = 0; b < batches.size(); ++b) {
            CHECK(batches[b].size() == (b == 10 ? 3u : 10u));
            all.insert(all.end(), batches[b].begin(), batches[b].end());
          }
          std::set<int64_t> unique(all.begin(), all.end());
          CHECK(unique.size() == all.size());  // no sample twice
          if (!drop_last) CHECK(unique.size() == 103u);
          CHECK(*unique.begin() >= 0);
          CHECK(*unique.rbegin() <= 102);
          CHECK(loader.next() == std::nullopt);  // stays at the end
        }
      }
    }
    DataLoader ordered(ds, {.batch_size = 50, .shuffle = false});
    auto b = epoch_batches(ordered, 5);
    REQUIRE(b.size() == 3);
    CHECK(b[0][0] == 0);
    CHECK(b[2] == std::vector<int64_t>{100, 101, 102});
  }

  TEST_CASE("loader: the order depends only on (seed, epoch), not on prefetch or history") {
    auto ds = numbered(257);
    DataLoader sync(ds, {.batch_size = 16, .seed = 42, .prefetch = 0});
    DataLoader one(ds, {.batch_size = 16, .seed = 42, .prefetch = 1});
    DataLoader deep(ds, {.batch_size = 16, .seed = 42, .prefetch = 8});
    DataLoader other(ds, {.batch_size = 16, .seed = 43, .prefetch = 2});
    auto e0 = epoch_batches(sync, 0), e1 = epoch_batches(sync, 1);
    CHECK(e0 != e1);  // a new shuffle each epoch
    CHECK(epoch_batches(one, 0) == e0);
    CHECK(epoch_batches(deep, 1) == e1);  // epoch 1 without running epoch 0 first
    CHECK(epoch_batches(deep, 0) == e0);
    CHECK(epoch_batches(other, 0) != e0);
    // Shuffled for real: not the identity, and not a rotation of it.
    std::vector<int64_t> order = sync.epoch_order(0);
    std::vector<int64_t> identity(257);
    std::iota(identity.begin(), identity.end(), 0);
    CHECK(order != identity);
    int fixed = 0;
    for (size_t i = 0; i < order.size(); ++i) fixed += order[i] == static_cast<int64_t>(i);
    CHECK(fixed < 10);  // a random permutation has ~1 fixed point

    // Resuming mid-epoch gives the rest of the same epoch.
    auto tail = epoch_batches(deep, 1, 5);
    CHECK(tail == std::vector<std::vector<int64_t>>(e1.begin() + 5, e1.end()));
    CHECK(deep.next_batch_index() == deep.batches_per_epoch());
    CHECK_THROWS_WITH_AS(deep.start_epoch(0, 100), doctest::Contains("first_batch 100 is outside"), Error);
  }

  TEST_CASE("loader: the prefetch thread stops cleanly mid-epoch and when destroyed") {
    auto ds = numbered(1000);
    for (int round = 0; round < 20; ++round) {
      DataLoader loader(ds, {.batch_size = 3, .seed = 1, .prefetch = 4});
      loader.start_epoch(0);
      for (int i = 0; i < round % 5; ++i) REQUIRE(loader.next().has_value());
      loader.start_epoch(1);  // abandons epoch 0 with a full queue
      auto b = loader.next();
      REQUIRE(b.has_value());
      std::vector<int64_t> order = loader.epoch_order(1);
      CHECK(b->indices == std::vector<int64_t>(order.begin(), order.begin() + 3));
    }  // destroyed with the worker blocked on a full queue
    DataLoader implicit(ds, {.batch_size = 500});
    CHECK(implicit.next().has_value());  // next() without start_epoch begins epoch 0
    CHECK(implicit.epoch() == 0);
  }

  TEST_CASE("loader: an error while assembling a batch reaches the caller at that batch") {
    for (int64_t prefetch : {0, 1, 3}) {
      CAPTURE(prefetch);
      auto ds = std::make_shared<Faulty>(13);
      DataLoader loader(ds, {.batch_size = 4, .shuffle = false, .prefetch = prefetch});
      loader.start_epoch(0);
      for (int i = 0; i < 3; ++i) REQUIRE(loader.next().has_value());  // samples 0..11
      CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("sample 13 is unreadable"), Error);
      CHECK(loader.next() == std::nullopt);  // the epoch ended at the failure
      loader.start_epoch(1);                 // and a new one starts normally
      CHECK(loader.next().has_value());
    }
  }

  TEST_CASE("loader: bad arguments") {
    auto ds = numbered(4);
    CHECK_THROWS_WITH_AS(DataLoader(ds, {.batch_size = 0}), doctest::Contains("batch_size must be at least 1"), Error);
    CHECK_THROWS_WITH_AS(DataLoader(ds, {.prefetch = -1}), doctest::Contains("prefetch"), Error);
    CHECK_THROWS_WITH_AS(DataLoader(nullptr, {}), doctest::Contains("null"), Error);
    CHECK_THROWS_WITH_AS(TensorDataset(zeros({3, 2}), zeros({4})), doctest::Contains("same first dim"), Error);
    CHECK_THROWS_WITH_AS(ds->get_batch({4}), doctest::Contains("index 4 is outside [0, 4)"), Error);
    DataLoader empty_loader(numbered(0), {.batch_size = 3});
    CHECK(empty_loader.batches_per_epoch() == 0);
    CHECK(empty_loader.next() == std::nullopt);
    // A non-contiguous source is packed once and gathered correctly.
    Tensor x = transpose(from_vector({0, 1, 2, 10, 11, 12}, {2, 3}), 0, 1);  // rows [0,10], [1,11], [2,12]
    TensorDataset t(x, from_vector_i64({5, 6, 7}));
    Batch b = t.get_batch({2, 0});
    CHECK(b.x.to_vector<float>() == std::vector<float>{2, 12, 0, 10});
    CHECK(b.y.to_vector<int64_t>() == std::vector<int64_t>{7, 5});
  }

  TEST_CASE("text: byte windows, targets shifted by one, random windows from the generator") {
    std::string text = "the quick brown fox jumps over the lazy dog";
    std::vector<uint8_t> bytes(text.begin(), text.end());
    ByteTextDataset ds(bytes, 8, 0, "fox");
    CHECK(ds.size() == (43 - 9) / 8 + 1);
    Batch b = ds.get_batch({0, 2});
    CHECK(b.x.sizes() == Shape{2, 8});
    CHECK(b.y.dtype() == DType::i64);
    CHECK(decode_bytes(b.x) == "the quicfox jump");
    CHECK(decode_bytes(b.y) == "he quickox jumps");
    CHECK_THROWS_WITH_AS(ds.get_batch({ds.size()}), doctest::Contains("fox: window 5 is outside [0, 5)"), Error);

    ByteTextDataset overlapping(bytes, 8, 1, "fox");
    CHECK(overlapping.size() == 43 - 8);  // every start 0..34
    Batch last = overlapping.get_batch({34});
    CHECK(decode_bytes(last.y) == "lazy dog");

    Generator g1(5), g2(5);
    Batch r1 = ds.random_batch(64, g1), r2 = ds.random_batch(64, g2);
    CHECK(r1.indices == r2.indices);
    CHECK(g1.offset == g2.offset);
    CHECK(g1.offset > 0);
    Batch r3 = ds.random_batch(64, g1);
    CHECK(r3.indices != r1.indices);
    std::set<int64_t> starts(r1.indices.begin(), r1.indices.end());
    CHECK(*starts.begin() >= 0);
    CHECK(*starts.rbegin() <= 43 - 9);
    CHECK(starts.size() > 15);  // 64 draws over 35 positions
    std::vector<int64_t> x = r1.x.to_vector<int64_t>(), y = r1.y.to_vector<int64_t>();
    for (size_t i = 0; i < 64; ++i) {
      for (size_t j = 0; j < 8; ++j) REQUIRE(x[i * 8 + j] == bytes[static_cast<size_t>(r1.indices[i]) + j]);
      for (size_t j = 0; j + 1 < 8; ++j) REQUIRE(y[i * 8 + j] == x[i * 8 + j + 1]);
    }

    CHECK(decode_bytes(encode_bytes("a\xff\n")) == "a\xff\n");
    CHECK(encode_bytes("\xff").to_vector<int64_t>() == std::vector<int64_t>{255});
    CHECK_THROWS_WITH_AS(decode_bytes(from_vector_i64({300})), doctest::Contains("token 300"), Error);
    CHECK_THROWS_WITH_AS(ByteTextDataset(std::vector<uint8_t>(8), 8, 0, "short"),
                         doctest::Contains("short: holds 8 bytes; a window of seq_len 8 needs at least 9"), Error);
    CHECK_THROWS_WITH_AS(ByteTextDataset("/nonexistent/corpus.txt", 8), doctest::Contains("/nonexistent/corpus.txt"),
                         Error);
  }

  TEST_CASE("text: a file through the prefetching loader covers every window once per epoch") {
    namespace fs = std::filesystem;
    fs::path p = fs::temp_directory_path() / ("tessel_text_" + std::to_string(::getpid()) + ".txt");
    {
      std::ofstream f(p, std::ios::binary);
      for (int i = 0; i < 1000; ++i) f << static_cast<char>('a' + i % 26);
    }
    auto ds = std::make_shared<ByteTextDataset>(p.string(), 16);
    fs::remove(p);
    CHECK(ds->size() == (1000 - 17) / 16 + 1);
    DataLoader loader(ds, {.batch_size = 7, .seed = 3, .prefetch = 2});
    loader.start_epoch(0);
    std::set<int64_t> seen;
    while (auto b = loader.next()) {
      for (size_t i = 0; i < b->indices.size(); ++i) {
        CHECK(seen.insert(b->indices[i]).second);
        CHECK(b->x.at({static_cast<int64_t>(i), 0}) == 'a' + (b->indices[i] * 16) % 26);
      }
    }
    CHECK(static_cast<int64_t>(seen.size()) == ds->size());
  }

  TEST_CASE("text: a directory reads as its text files in name order, without binaries or links") {
    namespace fs = std::filesystem;
    tessel::testing::TempDir dir;
    auto write = [&](const std::string& name, const std::string& bytes) {
      std::ofstream f(dir.file(name), std::ios::binary);
      f << bytes;
    };
    write("b", "second file\n");
    write("a", "first file\n");
    write("a.dat", std::string("\0\0\0\x02index", 9));    // binary: skipped
    fs::create_symlink(dir.file("a"), dir.file("a.u8"));  // a link: skipped
    ByteTextDataset ds(dir.path.string(), 4);
    const std::vector<uint8_t>& b = ds.bytes();
    CHECK(std::string(b.begin(), b.end()) == "first file\nsecond file\n");
    tessel::testing::TempDir empty_dir;
    CHECK_THROWS_WITH_AS(ByteTextDataset(empty_dir.path.string(), 4), doctest::Contains("no text files"), Error);
  }
}
