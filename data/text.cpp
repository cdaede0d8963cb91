// data/text.cpp — see data/text.h.
#include "data/text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace tessel {

namespace {

std::vector<uint8_t> read_one(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("ByteTextDataset", path, ": cannot open the text file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("ByteTextDataset", path, ": read failed");
  return bytes;
}

// A file or a directory (see data/text.h): the directory's text files, by name, concatenated.
std::vector<uint8_t> read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return read_one(path);
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(path, ec))
    if (e.is_regular_file(ec) && !e.is_symlink(ec)) files.push_back(e.path());
  check(!ec, "ByteTextDataset", path, ": cannot list the directory: ", ec.message());
  std::sort(files.begin(), files.end());
  std::vector<uint8_t> all;
  for (const fs::path& f : files) {
    std::vector<uint8_t> bytes = read_one(f.string());
    const size_t head = std::min<size_t>(bytes.size(), 4096);
    if (std::find(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(head), 0) !=
        bytes.begin() + static_cast<std::ptrdiff_t>(head))
      continue;  // a NUL byte: binary, not text (e.g. the fortune index files)
    all.insert(all.end(), bytes.begin(), bytes.end());
  }
  check(!all.empty(), "ByteTextDataset", path, ": the directory holds no text files");
  return all;
}

}  // namespace

ByteTextDataset::ByteTextDataset(const std::string& path, int64_t seq_len, int64_t stride)
    : ByteTextDataset(read_file(path), seq_len, stride, path) {}

ByteTextDataset::ByteTextDataset(std::vector<uint8_t> bytes, int64_t seq_len, int64_t stride, std::string name)
    : bytes_(std::move(bytes)), seq_len_(seq_len), stride_(stride == 0 ? seq_len : stride), name_(std::move(name)) {
  check(seq_len_ >= 1, "ByteTextDataset", name_, ": seq_len must be at least 1, got ", seq_len_);
  check(stride_ >= 1, "ByteTextDataset", name_, ": stride must be at least 1 (or 0 for seq_len), got ", stride);
  check(static_cast<int64_t>(bytes_.size()) >= seq_len_ + 1, "ByteTextDataset", name_, ": holds ", bytes_.size(),
        " bytes; a window of seq_len ", seq_len_, " needs at least ", seq_len_ + 1);
}

int64_t ByteTextDataset::size() const {
  const int64_t last_start = static_cast<int64_t>(bytes_.size()) - seq_len_ - 1;
  return last_start / stride_ + 1;
}

Batch ByteTextDataset::windows(const std::vector<int64_t>& starts) const {
  const int64_t b = static_cast<int64_t>(starts.size()), t = seq_len_;
  Tensor x = empty({b, t}, {.dtype = DType::i64}), y = empty({b, t}, {.dtype = DType::i64});
  int64_t* px = x.data_ptr<int64_t>();
  int64_t* py = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const uint8_t* w = bytes_.data() + starts[i];
    for (int64_t j = 0; j < t; ++j) {
      px[i * t + j] = w[j];
      py[i * t + j] = w[j + 1];
    }
  }
  return {x, y, {}};
}

Batch ByteTextDataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> starts(indices.size());
  const int64_t n = size();
  for (size_t i = 0; i < indices.size(); ++i) {
    check(indices[i] >= 0 && indices[i] < n, "ByteTextDataset", name_, ": window ", indices[i], " is outside [0, ", n,
          ")");
    starts[i] = indices[i] * stride_;
  }
  Batch batch = windows(starts);
  batch.indices = indices;
  return batch;
}

Batch ByteTextDataset::random_batch(int64_t batch, Generator& gen) const {
  check(batch >= 1, "ByteTextDataset", name_, ": batch must be at least 1, got ", batch);
  const uint64_t positions = bytes_.size() - static_cast<uint64_t>(seq_len_);  // starts 0 .. n - T - 1
  const uint64_t offset = gen.advance(batch, 2);                               // philox_u64: 2 per counter
  std::vector<int64_t> starts(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) starts[i] = static_cast<int64_t>(philox_u64(gen.seed, offset, i) % positions);
  Batch out = windows(starts);
  out.indices = std::move(starts);  // here: byte offsets of the windows
  return out;
}

Tensor encode_bytes(const std::string& text) {
  Tensor t = empty({static_cast<int64_t>(text.size())}, {.dtype = DType::i64});
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < text.size(); ++i) p[i] = static_cast<unsigned char>(text[i]);
  return t;
}

std::string decode_bytes(const Tensor& tokens) {
  check(tokens.dtype() == DType::i64 || tokens.dtype() == DType::i32, "decode_bytes",
        "expected an integer tensor of byte values, got ", dtype_name(tokens.dtype()));
  std::vector<int64_t> v = tokens.to_vector<int64_t>();
  std::string s(v.size(), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    check(v[i] >= 0 && v[i] <= 255, "decode_bytes", "token ", v[i], " at flat index ", i, " is not a byte (0..255)");
    s[i] = static_cast<char>(static_cast<unsigned char>(v[i]));
  }
  return s;
}

}  // namespace tessel
