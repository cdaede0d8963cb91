// tools/train_data.cpp — the data the training tasks read, through data/.
#include "autograd/ops/view.h"
#include "data/idx.h"
#include "data/text.h"
#include "tools/train_task.h"

namespace tessel::cli {

ImageSet load_fashion_mnist_split(const std::string& dir, bool train) {
  FashionMnist fm = load_fashion_mnist(train ? "train" : "test", dir.empty() ? kFashionMnistDir : dir);
  return {reshape(fm.images, {fm.images.size(0), 1, fm.images.size(1), fm.images.size(2)}), fm.labels};
}

Tensor load_text_bytes(const std::string& path) {
  ByteTextDataset text(path, 1);
  const std::vector<uint8_t>& b = text.bytes();
  Tensor t = empty({static_cast<int64_t>(b.size())}, {.dtype = DType::i64});
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < b.size(); ++i) p[i] = b[i];
  return t;
}

}  // namespace tessel::cli
