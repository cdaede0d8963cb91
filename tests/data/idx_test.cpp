// data/idx: IDX files the test writes itself (gzip through zlib, and plain), every kind of bad
// header and truncation, the Fashion-MNIST loader on a small fake dataset, and the real
// dataset from Debian's dataset-fashion-mnist when it is installed.
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
namespace fs = std::filesystem;

namespace {

// The bytes of an IDX file: magic (0, 0, type, ndim), big-endian dims, then `data`.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, int type = 0x08,
                               int ndim = -1) {
  std::vector<uint8_t> b = {0, 0, static_cast<uint8_t>(type),
                            static_cast<uint8_t>(ndim < 0 ? static_cast<int>(dims.size()) : ndim)};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  for (uint8_t v : data) b.push_back(v);
  return b;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> iota_bytes(size_t n, int mod = 256) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i % static_cast<size_t>(mod));
  return v;
}

// A small Fashion-MNIST look-alike: n images of 28x28 and their labels.
void write_fake_fmnist(const TempDir& dir, const std::string& prefix, uint32_t n, uint32_t n_labels,
                       uint8_t max_label = 9) {
  write_gz(dir.file(prefix + "-images-idx3-ubyte.gz"), idx_bytes({n, 28, 28}, iota_bytes(size_t{n} * 784)));
  write_gz(dir.file(prefix + "-labels-idx1-ubyte.gz"), idx_bytes({n_labels}, iota_bytes(n_labels, max_label + 1)));
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("idx: gzip-compressed and plain files read back exactly") {
    TempDir dir;
    std::vector<uint8_t> data = {0, 1, 2, 127, 128, 254, 255, 3, 4, 5, 6, 7};
    for (bool gz : {true, false}) {
      CAPTURE(gz);
      std::string path = dir.file(gz ? "a.idx.gz" : "a.idx");
      (gz ? write_gz : write_plain)(path, idx_bytes({3, 2, 2}, data));
      IdxArray a = read_idx(path);
      CHECK(a.shape == Shape{3, 2, 2});
      CHECK(a.bytes == data);
      Tensor f = idx_to_float(a);
      CHECK(f.dtype() == DType::f32);
      CHECK(f.sizes() == Shape{3, 2, 2});
      CHECK(f.at({0, 0, 0}) == 0.0);
      CHECK(f.at({1, 0, 1}) == doctest::Approx(254.0 / 255.0));
      CHECK(f.at({1, 1, 0}) == 1.0);
      CHECK(f.at({2, 1, 1}) == doctest::Approx(7.0 / 255.0));
      Tensor i = idx_to_int64(a);
      CHECK(i.dtype() == DType::i64);
      CHECK(i.at({1, 1, 0}) == 255.0);
    }
    // A 1-d file with zero elements is valid.
    write_gz(dir.file("empty.gz"), idx_bytes({0}, {}));
    CHECK(read_idx(dir.file("empty.gz")).shape == Shape{0});
  }

  TEST_CASE("idx: bad magic, unsupported types, truncation and trailing data are errors naming the file") {
    TempDir dir;
    std::string p = dir.file("bad.gz");
    auto rejects = [&](const std::vector<uint8_t>& bytes, const std::string& what) {
      CAPTURE(what);
      write_gz(p, bytes);
      try {
        read_idx(p);
        FAIL("read without an error");
      } catch (const Error& e) {
        std::string msg = e.what();
        CHECK_MESSAGE(msg.rfind("idx: " + p + ": ", 0) == 0, msg);
        CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
      }
    };
    rejects({}, "ends after 0 bytes");
    rejects({0, 0, 8}, "ends after 3 bytes");
    rejects({1, 0, 8, 1, 0, 0, 0, 0}, "bad magic number 0x01000801");
    rejects({0, 0, 0x42, 1, 0, 0, 0, 0}, "bad magic number");
    rejects(idx_bytes({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D), "holds float elements");
    rejects(idx_bytes({}, {}, 0x08, 0), "has 0 dims");
    rejects(idx_bytes({1, 1, 1, 1, 1, 1, 1, 1, 1}, {0}), "has 9 dims");
    rejects({0, 0, 8, 3, 0, 0, 0, 2, 0, 0}, "ends inside the header (dim 1 of 3)");
    rejects(idx_bytes({4, 28, 28}, iota_bytes(4 * 784 - 1)), "truncated: shape [4, 28, 28] needs 3136 data bytes");
    rejects(idx_bytes({4}, iota_bytes(5)), "data continues after the 4 bytes");
    rejects(idx_bytes({65535, 65535, 65535}, iota_bytes(10)), "holds more than");
    CHECK_THROWS_WITH_AS(read_idx(dir.file("absent.gz")), doctest::Contains("cannot open"), Error);

    // A damaged gzip stream: a truncated .gz, and flipped bytes in the compressed payload (the
    // CRC catches those that still inflate).
    std::string good = dir.file("good.gz");
    write_gz(good, idx_bytes({50, 28}, iota_bytes(50 * 28, 7)));
    std::vector<uint8_t> gz = read_plain(good);
    for (size_t cut : {gz.size() / 2, gz.size() - 4, gz.size() - 1}) {
      write_plain(p, std::vector<uint8_t>(gz.begin(), gz.begin() + static_cast<int64_t>(cut)));
      CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains(("idx: " + p).c_str()), Error);
    }
    int rejected = 0;
    for (size_t at = 10; at + 8 < gz.size(); ++at) {
      std::vector<uint8_t> b = gz;
      b[at] ^= 0x5A;
      write_plain(p, b);
      try {
        read_idx(p);
      } catch (const Error&) {
        ++rejected;
      }
    }
    CHECK(rejected == static_cast<int>(gz.size()) - 18);
  }

  TEST_CASE("idx: load_fashion_mnist checks shapes and labels, and names the package when the data is missing") {
    TempDir dir;
    write_fake_fmnist(dir, "train", 6, 6);
    FashionMnist train = load_fashion_mnist("train", dir.path.string());
    CHECK(train.images.sizes() == Shape{6, 28, 28});
    CHECK(train.images.dtype() == DType::f32);
    CHECK(train.labels.sizes() == Shape{6});
    CHECK(train.labels.dtype() == DType::i64);
    CHECK(train.labels.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(train.images.at({0, 0, 5}) == doctest::Approx(5.0 / 255.0));

    // The test split is missing in this folder: the error names the file and the package.
    try {
      load_fashion_mnist("test", dir.path.string());
      FAIL("loaded a missing split");
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK_MESSAGE(msg.find(dir.file("t10k-images-idx3-ubyte.gz")) != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("apt-get install dataset-fashion-mnist") != std::string::npos, msg);
    }
    CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.file("nowhere")),
                         doctest::Contains("apt-get install dataset-fashion-mnist"), Error);
    CHECK_THROWS_WITH_AS(load_fashion_mnist("valid", dir.path.string()), doctest::Contains("\"train\" or \"test\""),
                         Error);

    write_fake_fmnist(dir, "t10k", 4, 3);
    CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.path.string()), doctest::Contains("expected [4]"), Error);
    write_fake_fmnist(dir, "t10k", 12, 12, 11);
    CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.path.string()),
                         doctest::Contains("label 10 at index 10 is outside 0..9"), Error);
    write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes({2, 14, 56}, iota_bytes(2 * 784)));
    CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.path.string()), doctest::Contains("expected [N, 28, 28]"),
                         Error);
    // Uncompressed files are found too.
    fs::remove(dir.file("t10k-images-idx3-ubyte.gz"));
    fs::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
    write_plain(dir.file("t10k-images-idx3-ubyte"), idx_bytes({2, 28, 28}, iota_bytes(2 * 784)));
    write_plain(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {9, 0}));
    CHECK(load_fashion_mnist("test", dir.path.string()).labels.to_vector<int64_t>() == std::vector<int64_t>{9, 0});
  }

  TEST_CASE("idx: the real Fashion-MNIST from dataset-fashion-mnist") {
    if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-images-idx3-ubyte.gz")) {
      MESSAGE("SKIPPED: Fashion-MNIST is not installed in ", kFashionMnistDir,
              " (apt-get install dataset-fashion-mnist, or tools/setup)");
      return;
    }
    for (const auto& [split, n] : {std::pair<std::string, int64_t>{"test", 10000}, {"train", 60000}}) {
      CAPTURE(split);
      FashionMnist d = load_fashion_mnist(split);
      CHECK(d.images.sizes() == Shape{n, 28, 28});
      CHECK(d.labels.sizes() == Shape{n});
      std::vector<int64_t> counts(10, 0);
      for (int64_t l : d.labels.to_vector<int64_t>()) {
        REQUIRE(l >= 0);
        REQUIRE(l <= 9);
        ++counts[static_cast<size_t>(l)];
      }
      for (int64_t c : counts) CHECK(c == n / 10);  // the dataset is balanced
      std::vector<float> px = d.images.to_vector<float>();
      CHECK(*std::min_element(px.begin(), px.end()) == 0.0f);
      CHECK(*std::max_element(px.begin(), px.end()) == 1.0f);
    }
  }
}
