// core/safetensors.h — reading and writing the safetensors format (weights to and from PyTorch).
//
// A safetensors file (https://github.com/huggingface/safetensors) is:
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   a JSON object: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...,
//             "__metadata__": {"key": "value", ...}} (metadata optional, strings only), padded
//             with spaces
//   the rest  the data section: each tensor's bytes, row-major, little-endian, at [b, e)
//             relative to the section's start; together they cover it exactly (no holes, no
//             overlaps).
// Dtypes tessel reads and writes: F32, F64, BF16, F16, I32, I64, BOOL.
//
// Reading is defensive: the file size, the header length (at most 100 MB and within the file),
// the JSON, and every entry's dtype, shape (non-negative, element count without overflow) and
// data_offsets (ordered, the size the shape needs, inside the data section, no overlaps, no
// holes) are all checked before any tensor is allocated. Every failure throws tessel::Error:
//   "safetensors: ckpt.st: tensor 'w' data_offsets [0, 100) do not match shape [5, 6] of F32 (120 bytes)"
// Writing is atomic: a temporary file in the same directory, fsync, rename.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace tessel {

struct SafetensorsFile {
  // In the order of their bytes in the file (for files tessel wrote: widest dtype first, then
  // the order given to save_safetensors).
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws tessel::Error naming the missing tensor
};

// Writes `tensors` (any strides: non-contiguous ones are packed; CPU, or contiguous on a device)
// and `metadata` to `path` atomically. Names must be unique and not "__metadata__". The data
// section lays tensors out by decreasing element size (stable), so every tensor is aligned to
// its element size as the reference writer does.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The same bytes, in memory.
std::vector<uint8_t> save_safetensors_to_memory(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                const std::map<std::string, std::string>& metadata = {});

// Reads a file; tensors come back contiguous, on the CPU, owning their memory.
SafetensorsFile load_safetensors(const std::string& path);
// Reads the bytes of a safetensors file held in memory; `name` stands for the file in errors.
SafetensorsFile load_safetensors_from_memory(const void* data, size_t size, const std::string& name = "<memory>");

// The format's dtype names ("F32", "BF16", "BOOL", ...), and back (throws on names tessel does
// not hold).
const char* safetensors_dtype_name(DType t);
DType safetensors_dtype_from_name(const std::string& name);

}  // namespace tessel
