// data/idx.cpp — the IDX reader (format: data/idx.h), through zlib so .gz files need no
// separate step.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace tessel {

namespace {

// Bigger than any IDX dataset in use (Fashion-MNIST train images are 47 MB); a header that
// claims more is corrupt.
constexpr int64_t kMaxIdxBytes = int64_t{1} << 36;
constexpr unsigned kChunk = 1u << 20;

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

std::string gz_error(gzFile f) {
  int code = 0;
  const char* msg = gzerror(f, &code);
  if (code == Z_ERRNO) return std::strerror(errno);
  return msg && *msg ? msg : "unknown zlib error";
}

// Reads up to n bytes; returns how many arrived (fewer only at the end of the stream).
size_t read_some(gzFile f, const std::string& path, void* dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, kChunk));
    int r = gzread(f, static_cast<char*>(dst) + got, want);
    if (r < 0) fail("idx", path, ": read failed: ", gz_error(f));
    if (r == 0) {
      // zlib returns what it has at the end of the input and reports a cut-off stream (a
      // missing trailer included) only through gzerror.
      int code = Z_OK;
      gzerror(f, &code);
      if (code != Z_OK) fail("idx", path, ": the gzip stream is truncated or damaged: ", gz_error(f));
      break;
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

const char* idx_type_name(int code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return nullptr;
  }
}

std::string find_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& candidate : {name + ".gz", name})
    if (fs::is_regular_file(fs::path(dir) / candidate, ec)) return (fs::path(dir) / candidate).string();
  fail("fashion_mnist", "Fashion-MNIST not found: ", (fs::path(dir) / (name + ".gz")).string(),
       " does not exist. Install the dataset with `apt-get install dataset-fashion-mnist` (Debian; it puts the files "
       "in ",
       kFashionMnistDir, "), or point data_dir (--data-dir) at a folder holding the four IDX files");
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzFile gz;
  errno = 0;
  gz.f = gzopen(path.c_str(), "rb");
  if (!gz.f) fail("idx", path, ": cannot open: ", errno ? std::strerror(errno) : "out of memory");
  gzbuffer(gz.f, 1u << 17);

  unsigned char magic[4];
  size_t got = read_some(gz.f, path, magic, 4);
  if (got < 4) fail("idx", path, ": the file ends after ", got, " bytes, inside the 4-byte magic number");
  const int type = magic[2], ndim = magic[3];
  if (magic[0] != 0 || magic[1] != 0 || !idx_type_name(type)) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%02x%02x%02x%02x", magic[0], magic[1], magic[2], magic[3]);
    fail("idx", path, ": bad magic number ", hex, "; an IDX file starts with 0x0000 then a type code and a dim count");
  }
  if (type != 0x08)
    fail("idx", path, ": holds ", idx_type_name(type), " elements; tessel reads unsigned-byte (0x08) IDX files");
  if (ndim < 1 || ndim > kMaxDims) fail("idx", path, ": has ", ndim, " dims; expected 1 to ", kMaxDims);

  IdxArray out;
  int64_t numel = 1;
  for (int d = 0; d < ndim; ++d) {
    unsigned char b[4];
    got = read_some(gz.f, path, b, 4);
    if (got < 4) fail("idx", path, ": the file ends inside the header (dim ", d, " of ", ndim, ")");
    int64_t size = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]};
    out.shape.push_back(size);
    if (__builtin_mul_overflow(numel, size, &numel) || numel > kMaxIdxBytes)
      fail("idx", path, ": shape ", out.shape, "... holds more than ", kMaxIdxBytes, " elements (corrupt header?)");
  }

  // Grow with the data that actually arrives: a lying header costs at most one chunk.
  const size_t total = static_cast<size_t>(numel);
  size_t have = 0;
  while (have < total) {
    size_t step = std::min<size_t>(total - have, kChunk);
    out.bytes.resize(have + step);
    size_t r = read_some(gz.f, path, out.bytes.data() + have, step);
    have += r;
    if (r < step)
      fail("idx", path, ": truncated: shape ", out.shape, " needs ", total, " data bytes, the file holds ", have);
  }
  // Reading past the end also makes zlib check the gzip trailer (CRC and length).
  unsigned char extra;
  if (read_some(gz.f, path, &extra, 1) != 0)
    fail("idx", path, ": data continues after the ", total, " bytes that shape ", out.shape, " needs");
  return out;
}

Tensor idx_to_float(const IdxArray& a) {
  check(static_cast<int64_t>(a.bytes.size()) == shape_numel(a.shape), "idx_to_float", "shape ", a.shape, " needs ",
        shape_numel(a.shape), " bytes, got ", a.bytes.size());
  Tensor t = empty(a.shape, {.dtype = DType::f32});
  float* p = t.data_ptr<float>();
  for (size_t i = 0; i < a.bytes.size(); ++i) p[i] = static_cast<float>(a.bytes[i]) * (1.0f / 255.0f);
  return t;
}

Tensor idx_to_int64(const IdxArray& a) {
  check(static_cast<int64_t>(a.bytes.size()) == shape_numel(a.shape), "idx_to_int64", "shape ", a.shape, " needs ",
        shape_numel(a.shape), " bytes, got ", a.bytes.size());
  Tensor t = empty(a.shape, {.dtype = DType::i64});
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < a.bytes.size(); ++i) p[i] = a.bytes[i];
  return t;
}

FashionMnist load_fashion_mnist(const std::string& split, const std::string& data_dir) {
  check(split == "train" || split == "test", "fashion_mnist", "split must be \"train\" or \"test\", got \"", split,
        "\"");
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string images_path = find_file(data_dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(data_dir, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  check(images.shape.size() == 3 && images.shape[1] == 28 && images.shape[2] == 28, "fashion_mnist", images_path,
        ": images have shape ", images.shape, "; expected [N, 28, 28]");
  check(labels.shape.size() == 1 && labels.shape[0] == images.shape[0], "fashion_mnist", labels_path,
        ": labels have shape ", labels.shape, "; expected [", images.shape[0], "] to match the images");
  for (size_t i = 0; i < labels.bytes.size(); ++i)
    check(labels.bytes[i] <= 9, "fashion_mnist", labels_path, ": label ", int{labels.bytes[i]}, " at index ", i,
          " is outside 0..9");
  return {idx_to_float(images), idx_to_int64(labels)};
}

}  // namespace tessel
