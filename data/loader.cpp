// data/loader.cpp — see data/loader.h.
#include "data/loader.h"

#include <cstring>

namespace tessel {

namespace {

// Copies rows `indices` of contiguous `t` ([N, ...]) into a new [B, ...] tensor.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices, const char* what) {
  Shape shape = t.sizes();
  const int64_t n = shape[0];
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor out = empty(shape, {.dtype = t.dtype()});
  const size_t row = static_cast<size_t>(n == 0 ? 0 : t.numel() / n) * t.element_size();
  const char* src = static_cast<const char*>(t.data());
  char* dst = static_cast<char*>(out.data());
  for (size_t i = 0; i < indices.size(); ++i) {
    check(indices[i] >= 0 && indices[i] < n, "TensorDataset", "index ", indices[i], " is outside [0, ", n, ") of ",
          what);
    if (row) std::memcpy(dst + i * row, src + static_cast<size_t>(indices[i]) * row, row);
  }
  return out;
}

Tensor packed(const Tensor& t) {
  if (t.is_contiguous()) return t.detach();
  Tensor p = empty(t.sizes(), {.dtype = t.dtype()});
  copy_into(p, t);
  return p;
}

}  // namespace

TensorDataset::TensorDataset(Tensor x, Tensor y) {
  check(x.defined() && y.defined(), "TensorDataset", "x and y must be defined tensors");
  check(x.device().is_cpu() && y.device().is_cpu(), "TensorDataset", "needs CPU tensors, got x on ", x.device().str(),
        " and y on ", y.device().str());
  check(x.dim() >= 1 && y.dim() >= 1 && x.size(0) == y.size(0), "TensorDataset",
        "x and y need the same first dim (one row per sample), got x ", x.sizes(), " and y ", y.sizes());
  x_ = packed(x);
  y_ = packed(y);
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  return {gather_rows(x_, indices, "x"), gather_rows(y_, indices, "y"), indices};
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  check(dataset_ != nullptr, "DataLoader", "dataset is null");
  check(options_.batch_size >= 1, "DataLoader", "batch_size must be at least 1, got ", options_.batch_size);
  check(options_.prefetch >= 0, "DataLoader", "prefetch must be >= 0, got ", options_.prefetch);
  check(dataset_->size() >= 0, "DataLoader", "dataset size is negative (", dataset_->size(), ")");
}

DataLoader::~DataLoader() { stop_worker(); }

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  check(epoch >= 0, "DataLoader", "epoch must be >= 0, got ", epoch);
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!options_.shuffle) return order;
  // Fisher-Yates with the i-th swap's random number at counter block `epoch` of the seed's
  // stream (2^32 counters, 2^33 draws per epoch): any epoch's order is computable directly.
  // The modulo's bias is below n / 2^64, far under anything measurable.
  Generator gen(options_.seed);
  gen.offset = static_cast<uint64_t>(epoch) << 32;
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t r = philox_u64(gen.seed, gen.offset, n - 1 - i);
    std::swap(order[i], order[static_cast<size_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

Batch DataLoader::make_batch(int64_t b) const {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t begin = b * options_.batch_size, end = std::min(n, begin + options_.batch_size);
  std::vector<int64_t> indices(order_.begin() + begin, order_.begin() + end);
  Batch batch = dataset_->get_batch(indices);
  batch.indices = std::move(indices);
  return batch;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  check(first_batch >= 0 && first_batch <= batches_per_epoch(), "DataLoader", "first_batch ", first_batch,
        " is outside [0, ", batches_per_epoch(), "]");
  stop_worker();
  order_ = epoch_order(epoch);
  epoch_ = epoch;
  position_ = first_batch;
  started_ = true;
  if (options_.prefetch > 0) worker_ = std::thread([this, first_batch] { worker_loop(first_batch); });
}

void DataLoader::worker_loop(int64_t first_batch) {
  const int64_t count = batches_per_epoch();
  for (int64_t b = first_batch; b < count; ++b) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch; });
      if (stop_) break;
    }
    Slot slot;
    try {
      slot.batch = make_batch(b);
    } catch (...) {
      slot.error = std::current_exception();
    }
    const bool failed = slot.error != nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(slot));
    }
    cv_.notify_all();
    if (failed) break;  // the consumer sees the error where the batch would have been
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker_done_ = true;
  }
  cv_.notify_all();
}

void DataLoader::stop_worker() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  queue_.clear();
  stop_ = false;
  worker_done_ = false;
}

std::optional<Batch> DataLoader::next() {
  if (!started_) start_epoch(0);
  if (position_ >= batches_per_epoch()) return std::nullopt;
  if (options_.prefetch == 0) {
    try {
      Batch b = make_batch(position_);
      ++position_;
      return b;
    } catch (...) {
      position_ = batches_per_epoch();  // as with prefetch: the epoch ends at the failure
      throw;
    }
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || worker_done_; });
    if (queue_.empty()) return std::nullopt;  // the worker stopped early (after an error)
    slot = std::move(queue_.front());
    queue_.pop_front();
  }
  cv_.notify_all();
  if (slot.error) {
    position_ = batches_per_epoch();  // the epoch ends at the failure
    std::rethrow_exception(slot.error);
  }
  ++position_;
  return std::move(slot.batch);
}

}  // namespace tessel
