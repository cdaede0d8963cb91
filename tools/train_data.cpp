// tools/train_data.cpp — the data the training tasks read.
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "tools/train_task.h"

namespace tessel::cli {
namespace {

constexpr const char* kDebianDir = "/usr/share/datasets/fashion-mnist";

// Reads a whole gzip (or plain) file through zlib.
std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  check(f != nullptr, "train", "cannot open ", path);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  gzclose(f);
  check(n == 0 && err == Z_OK, "train", path, ": corrupt gzip data (", msg ? msg : "?", ")");
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// IDX: magic 0x0000 08 <ndim>, then ndim big-endian u32 sizes, then u8 data.
std::pair<std::vector<int64_t>, std::vector<uint8_t>> read_idx(const std::string& path, int ndim) {
  std::vector<uint8_t> raw = read_gz(path);
  check(raw.size() >= 4 + 4 * static_cast<size_t>(ndim) && be32(raw.data()) == (0x0800u | static_cast<uint32_t>(ndim)),
        "train", path, ": not an IDX file of ", ndim, "-d unsigned bytes");
  std::vector<int64_t> dims;
  size_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    dims.push_back(be32(raw.data() + 4 + 4 * d));
    count *= static_cast<size_t>(dims.back());
  }
  size_t header = 4 + 4 * static_cast<size_t>(ndim);
  check(raw.size() == header + count, "train", path, ": holds ", raw.size() - header, " data bytes, the header says ",
        count);
  return {dims, std::vector<uint8_t>(raw.begin() + static_cast<std::ptrdiff_t>(header), raw.end())};
}

}  // namespace

ImageSet load_fashion_mnist_split(const std::string& dir_in, bool train) {
  std::string dir = dir_in.empty() ? kDebianDir : dir_in;
  std::string prefix = dir + (train ? "/train" : "/t10k");
  std::string images = prefix + "-images-idx3-ubyte.gz", labels = prefix + "-labels-idx1-ubyte.gz";
  if (FILE* f = std::fopen(images.c_str(), "rb")) {
    std::fclose(f);
  } else {
    fail("train", "Fashion-MNIST not found: ", images,
         " is missing. Install Debian's package (apt-get install dataset-fashion-mnist, or tools/setup) or point "
         "--data-dir at a directory with the four IDX .gz files");
  }
  auto [idims, ibytes] = read_idx(images, 3);
  auto [ldims, lbytes] = read_idx(labels, 1);
  check(idims[0] == ldims[0] && idims[1] == 28 && idims[2] == 28, "train", images,
        ": expected [N, 28, 28] images and N labels, got ", Shape(idims), " and ", Shape(ldims));
  ImageSet s;
  s.images = empty({idims[0], 1, 28, 28});
  float* px = s.images.data_ptr<float>();
  for (size_t i = 0; i < ibytes.size(); ++i) px[i] = static_cast<float>(ibytes[i]) * (1.0f / 255.0f);
  s.labels = empty({ldims[0]}, {.dtype = DType::i64});
  int64_t* lab = s.labels.data_ptr<int64_t>();
  for (size_t i = 0; i < lbytes.size(); ++i) {
    check(lbytes[i] < 10, "train", labels, ": label ", int(lbytes[i]), " at ", i, " is not in 0..9");
    lab[i] = lbytes[i];
  }
  return s;
}

Tensor load_text_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "train", "cannot read the text file ", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Tensor t = empty({static_cast<int64_t>(bytes.size())}, {.dtype = DType::i64});
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < bytes.size(); ++i) p[i] = static_cast<unsigned char>(bytes[i]);
  return t;
}

}  // namespace tessel::cli
