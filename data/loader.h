// data/loader.h — datasets, shuffling, batching and a background prefetch thread.
//
// A Dataset maps a list of sample indices to one Batch (inputs x and targets y, stacked along
// a new first dim). A DataLoader walks a dataset in epochs: the order of epoch e is a
// Fisher-Yates shuffle driven by tessel's counter-based generator (core/rng.h) at seed `seed`
// and counter block e, so it depends only on (seed, epoch) — not on the prefetch setting,
// the thread timing, or how many epochs ran before (start_epoch(e, b) resumes anywhere).
//
// With prefetch > 0 a worker thread assembles up to `prefetch` batches ahead into a bounded
// queue while the caller trains on the current one. An exception thrown while assembling a
// batch is rethrown by next() at that batch's position; stopping (a new start_epoch, or the
// destructor) wakes and joins the worker.
//
//   DataLoader loader(std::make_shared<TensorDataset>(images, labels), {.batch_size = 128, .seed = 1});
//   for (int64_t epoch = 0; epoch < 10; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) train_step(batch->x, batch->y);
//   }
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace tessel {

struct Batch {
  Tensor x;                      // inputs, [B, ...]
  Tensor y;                      // targets, [B, ...]
  std::vector<int64_t> indices;  // the dataset samples it holds, in order
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The samples at `indices` (each in [0, size())), stacked. Called from the loader's worker
  // thread, so it must not touch shared mutable state.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
};

// Rows of two tensors with the same first dim, e.g. images [N, 28, 28] and labels [N].
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor x, Tensor y);  // CPU tensors; non-contiguous ones are packed once here
  int64_t size() const override { return x_.size(0); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  const Tensor& x() const { return x_; }
  const Tensor& y() const { return y_; }

 private:
  Tensor x_, y_;
};

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;     // false: dataset order
  bool drop_last = false;  // drop a last, smaller batch
  uint64_t seed = 0;       // the shuffle's generator seed
  int64_t prefetch = 2;    // batches a worker thread prepares ahead; 0: assemble in next()
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  // Starts epoch `epoch` at its batch `first_batch` (to resume a run mid-epoch).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch (epoch 0 if none was started), or nullopt at its end.
  std::optional<Batch> next();
  int64_t epoch() const { return epoch_; }
  int64_t next_batch_index() const { return position_; }  // for checkpoints: resume here
  // The sample order of an epoch: a permutation of [0, size()) (identity without shuffle).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  Batch make_batch(int64_t b) const;
  void stop_worker();
  void worker_loop(int64_t first_batch);

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  bool started_ = false;
  std::vector<int64_t> order_;

  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Slot> queue_;
  bool stop_ = false;
  bool worker_done_ = false;
};

}  // namespace tessel
