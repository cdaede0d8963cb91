// data/idx.h — the IDX file format (MNIST, Fashion-MNIST) and the Fashion-MNIST dataset.
//
// An IDX file is: two zero bytes, a type code (0x08 = unsigned byte, the only one these
// datasets use), the number of dimensions d, then d big-endian 32-bit sizes, then the
// elements row-major. The files may be gzip-compressed (as Debian's `dataset-fashion-mnist`
// installs them); zlib reads compressed and plain files alike.
//
// Everything is validated: the magic, the dims, the element count (no overflow, a sane
// bound), that the data is all there and that nothing follows it. Memory grows as bytes
// actually arrive, so a corrupt header cannot make the reader allocate what the file does not
// hold. Errors are tessel::Error naming the file and what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessel {

// Where Debian's `dataset-fashion-mnist` package puts the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// The ten classes, by label.
inline constexpr const char* kFashionMnistClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// One unsigned-byte IDX array.
struct IdxArray {
  Shape shape;
  std::vector<uint8_t> bytes;  // row-major, shape_numel(shape) of them
};

// Reads an unsigned-byte IDX file, gzip-compressed or not.
IdxArray read_idx(const std::string& path);

// The bytes as f32 scaled to [0, 1] (x / 255), shape as in the file.
Tensor idx_to_float(const IdxArray& a);
// The bytes as i64 (class labels), shape as in the file.
Tensor idx_to_int64(const IdxArray& a);

struct FashionMnist {
  Tensor images;  // f32 [N, 28, 28] in [0, 1]
  Tensor labels;  // i64 [N], 0..9 (kFashionMnistClasses)
};

// split: "train" (60000 images) or "test" (10000). In data_dir it looks for
// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, or the same names without .gz. A missing
// dataset throws an Error naming the path and the Debian package that installs it.
FashionMnist load_fashion_mnist(const std::string& split, const std::string& data_dir = kFashionMnistDir);

}  // namespace tessel
