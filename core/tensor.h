// core/tensor.h — the Tensor: a strided view of refcounted storage, plus its autograd state.
//
// A Tensor is a cheap handle (a shared pointer) to a TensorImpl: sizes, strides (in elements),
// a storage offset, a dtype and a device, over a Storage block that views share. Copying a
// Tensor copies the handle, not the data. Views (reshape, permute, slices, expand, ...) make a
// new TensorImpl over the same Storage; `contiguous()` in autograd/ops makes a packed copy.
//
// This layer knows nothing of math: ops live in autograd/ops (free functions, so `a + b`,
// `matmul(a, b)`, `reshape(x, {2, -1})`), kernels in kernels/. The few methods declared here
// and defined in autograd/engine.cpp (backward, register_hook, retain_grad) are marked.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/buf.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace tessel {

// A block of memory on one device. Views share it; its version counter counts in-place writes
// so that autograd can tell when a tensor saved for backward was modified afterwards.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::atomic<uint64_t> version{0};
  std::function<void(void*)> deleter;  // set for memory tessel does not own (from_blob)

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  ~Storage();
};

// Device backends other than the CPU register their allocator here (the CUDA backend does).
struct DeviceAllocatorHooks {
  void* (*allocate)(size_t nbytes, int index) = nullptr;
  void (*deallocate)(void* p, size_t nbytes, int index) = nullptr;
  // Copies nbytes between any two devices of which at least one is this type.
  void (*copy)(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) = nullptr;
  // Both on one device of this type: dst[i] = convert(src[i]) where src (same ndim as dst) has
  // already been broadcast to dst's sizes (stride 0 on stretched dims); any dtype pair.
  void (*strided_copy)(const Buf& dst, const Buf& src, int index) = nullptr;
  void (*fill)(const Buf& dst, double value, int index) = nullptr;  // every element of dst = value
};
const DeviceAllocatorHooks* device_hooks(DeviceType type);  // null members when not built
void register_device_allocator(DeviceType type, DeviceAllocatorHooks hooks);

class Tensor;
struct Node;  // autograd/node.h

// A tensor hook sees the gradient flowing into the tensor in backward. It may return a
// replacement gradient, or an undefined Tensor to keep the gradient as it is.
using TensorHook = std::function<Tensor(const Tensor&)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // Autograd state. A leaf that requires grad has no grad_fn and collects `grad`; a tensor made
  // by a differentiable op has grad_fn set and requires_grad true.
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  std::vector<TensorHook> hooks;  // leaf hooks; a non-leaf's hooks live on its grad_fn
  std::string name;               // optional, for error messages and printing
};

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // --- metadata ---
  int64_t dim() const { return static_cast<int64_t>(get().sizes.size()); }
  const Shape& sizes() const { return get().sizes; }
  const Shape& strides() const { return get().strides; }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  int64_t offset() const { return get().offset; }
  DType dtype() const { return get().dtype; }
  Device device() const { return get().storage->device; }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return get().storage; }

  // --- raw data (no autograd) ---
  void* data() const;  // address of element 0
  template <class T>
  T* data_ptr() const {
    check(dtype_of<T>() == dtype(), "data_ptr", "requested ", dtype_name(dtype_of<T>()), " but the tensor is ",
          dtype_name(dtype()));
    return static_cast<T*>(data());
  }
  Buf buf() const;  // the kernel's view of this tensor
  // A new tensor over the same storage with the given geometry (checked against the storage).
  Tensor alias(const Shape& sizes, const Shape& strides, int64_t offset) const;
  Tensor detach() const;  // same data, no autograd history

  // --- element access, for tests and small programs (CPU tensors) ---
  double item() const;                                           // the one element of a numel()==1 tensor
  double at(const std::vector<int64_t>& index) const;            // one element, converted to double
  void set_at(const std::vector<int64_t>& index, double value);  // in place, bumps the version
  template <class T>
  std::vector<T> to_vector() const;  // all elements, row-major, converted

  // --- in-place writes tracking ---
  uint64_t version() const { return get().storage->version.load(); }
  void bump_version() const { get().storage->version.fetch_add(1); }

  // --- autograd state ---
  bool requires_grad() const { return get().requires_grad; }
  // Marks a leaf as a parameter whose gradient is collected in grad(). Returns *this.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return get().grad_fn == nullptr; }
  Tensor grad() const { return get().grad ? Tensor(get().grad) : Tensor(); }
  void set_grad(const Tensor& g) { get().grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return get().grad_fn; }
  const std::string& name() const { return get().name; }
  Tensor& set_name(std::string n) {
    get().name = std::move(n);
    return *this;
  }

  // Defined in autograd/engine.cpp:
  // Backpropagates from this tensor. With no gradient given, the tensor must have one element
  // and the gradient is 1. retain_graph keeps the saved tensors for another backward;
  // create_graph records the backward itself so that it can be differentiated again.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  void register_hook(TensorHook hook) const;
  void retain_grad() const;  // keep grad() on a non-leaf too

  std::string str() const;  // readable printing, like PyTorch's repr

 private:
  TensorImpl& get() const {
    if (!impl_) throw Error("tensor: used an undefined (default-constructed) Tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

Shape contiguous_strides(const Shape& sizes);
int64_t shape_numel(const Shape& sizes);

// --- factories (core: no autograd involved beyond the requires_grad flag) ---
Tensor empty(const Shape& sizes, TensorOptions opts = {});
Tensor zeros(const Shape& sizes, TensorOptions opts = {});
Tensor ones(const Shape& sizes, TensorOptions opts = {});
Tensor full(const Shape& sizes, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});  // 0-dim
// [start, end) in steps of `step`; dtype defaults to i64 unless given in opts.
Tensor arange(double start, double end, double step = 1, TensorOptions opts = {.dtype = DType::i64});
Tensor arange(int64_t end, TensorOptions opts = {.dtype = DType::i64});
// Copies `values` (converted to opts.dtype) into a new tensor of shape `sizes`
// (default: 1-d of values.size()).
Tensor from_vector(const std::vector<double>& values, const Shape& sizes = {}, TensorOptions opts = {});
Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& sizes = {},
                       TensorOptions opts = {.dtype = DType::i64});
// Wraps memory the caller owns (CPU); the deleter, if given, runs when the last view goes.
Tensor from_blob(void* data, const Shape& sizes, DType dtype, std::function<void(void*)> deleter = {});
Tensor empty_like(const Tensor& t, TensorOptions opts);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

// Memory relations that in-place ops check. Conservative: may_overlap can raise a false alarm
// (same storage, intersecting element ranges) but never misses a real overlap.
bool may_overlap(const Tensor& a, const Tensor& b);
bool same_elements(const Tensor& a, const Tensor& b);  // same storage, offset, sizes, strides
bool has_internal_overlap(const Tensor& t);            // can two indices reach one element?

// Raw strided copy with dtype conversion (no autograd): dst[i] = convert(src[i]), where src
// must have dst's shape or broadcast to it. Bumps dst's version. Used by contiguous(), to()
// and the ops that build results piece by piece.
void copy_into(const Tensor& dst, const Tensor& src);
void fill_raw(const Tensor& dst, double value);  // every element of dst (any strides) = value

}  // namespace tessel
