// data/text.h — a byte-level text dataset: tokens are the file's bytes (vocabulary 256).
//
// A sample is a window of T + 1 consecutive bytes; x is its first T, y its last T (the next
// byte at every position), both i64 [T]. Two ways to draw them:
//   - as a Dataset for DataLoader: windows start at 0, stride, 2 stride, ... (stride defaults
//     to T, so an epoch reads the text once, in shuffled chunks);
//   - random_batch(): B windows at uniformly random start positions, drawn from a Generator
//     (the usual way to train a language model: no epochs, every offset possible).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/loader.h"

namespace tessel {

class ByteTextDataset : public Dataset {
 public:
  static constexpr int64_t kVocabSize = 256;

  // Reads the whole file; it must hold at least seq_len + 1 bytes. stride 0 means seq_len.
  // A directory stands for its text files concatenated in name order: regular files (not
  // symlinks) without a NUL byte in their first 4 KiB — so /usr/share/games/fortunes (Debian's
  // `fortunes`) reads as its fortune texts, without the binary .dat indexes or .u8 links.
  ByteTextDataset(const std::string& path, int64_t seq_len, int64_t stride = 0);
  // Over bytes already in memory; `name` stands for them in errors.
  ByteTextDataset(std::vector<uint8_t> bytes, int64_t seq_len, int64_t stride, std::string name);

  int64_t size() const override;                                        // windows at multiples of stride that fit
  Batch get_batch(const std::vector<int64_t>& indices) const override;  // x, y: i64 [B, T]
  // B windows at start positions uniform in [0, bytes - T - 1], drawn from gen (advances it).
  Batch random_batch(int64_t batch, Generator& gen) const;

  int64_t seq_len() const { return seq_len_; }
  int64_t stride() const { return stride_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  Batch windows(const std::vector<int64_t>& starts) const;
  std::vector<uint8_t> bytes_;
  int64_t seq_len_;
  int64_t stride_;
  std::string name_;
};

// Text to tokens (i64 [n]) and back (any integer tensor of values 0..255, any shape, row-major).
Tensor encode_bytes(const std::string& text);
std::string decode_bytes(const Tensor& tokens);

}  // namespace tessel
