#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <sstream>

#include "core/allocator.h"
#include "core/parallel.h"
#if TESSEL_HAVE_CUDA
#include "core/cuda/hooks.h"
#endif

namespace tessel {

// ---------------------------------------------------------------- storage

namespace {
DeviceAllocatorHooks g_device_hooks[2];

// The backends built into this library register on first use (an explicit call: a static
// initializer in core/cuda/ would be dropped by the linker with the object file holding it).
DeviceAllocatorHooks& hooks_of(DeviceType type) {
#if TESSEL_HAVE_CUDA
  static std::once_flag once;
  std::call_once(once, [] { cuda::register_cuda_hooks(); });
#endif
  return g_device_hooks[static_cast<int>(type)];
}

const char* kNoBackend = ": tessel was built without CUDA (configure with -DTESSEL_CUDA=ON)";
}  // namespace

void register_device_allocator(DeviceType type, DeviceAllocatorHooks hooks) {
  g_device_hooks[static_cast<int>(type)] = hooks;
}

const DeviceAllocatorHooks* device_hooks(DeviceType type) { return &hooks_of(type); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  s->device = device;
  if (device.is_cpu()) {
    s->data = cpu_allocator::allocate(nbytes);
  } else {
    auto& hooks = hooks_of(device.type);
    if (!hooks.allocate) fail("tensor", "device ", device.str(), " is not available", kNoBackend);
    s->data = hooks.allocate(nbytes, device.index);
  }
  return s;
}

Storage::~Storage() {
  if (deleter) {
    deleter(data);
  } else if (device.is_cpu()) {
    cpu_allocator::deallocate(data, nbytes);
  } else if (auto& hooks = hooks_of(device.type); hooks.deallocate) {
    hooks.deallocate(data, nbytes, device.index);
  }
}

// ---------------------------------------------------------------- geometry

Shape contiguous_strides(const Shape& sizes) {
  Shape st(sizes.size());
  int64_t s = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    st[i] = s;
    s *= std::max<int64_t>(sizes[i], 1);
  }
  return st;
}

int64_t shape_numel(const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

// Validates a shape for new memory: non-negative sizes, at most kMaxDims dims, and a byte size
// that fits in memory arithmetic (no overflow of numel * element size).
size_t checked_nbytes(const Shape& sizes, DType dtype, const char* op) {
  check(static_cast<int64_t>(sizes.size()) <= kMaxDims, op, "at most ", kMaxDims, " dims are supported, got shape ",
        sizes);
  int64_t n = 1;
  bool overflow = false;
  for (int64_t s : sizes) {
    check(s >= 0, op, "negative size in shape ", sizes);
    overflow |= __builtin_mul_overflow(n, s, &n);
  }
  int64_t bytes = 0;
  overflow |= __builtin_mul_overflow(n, static_cast<int64_t>(dtype_size(dtype)), &bytes);
  check(!overflow, op, "shape ", sizes, " of ", dtype_name(dtype), " is too large to address");
  return static_cast<size_t>(bytes);
}

int64_t Tensor::size(int64_t d) const { return sizes()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return shape_numel(sizes()); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to lay out
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sizes()[i] != 1 && strides()[i] != expected) return false;
    expected *= sizes()[i];
  }
  return true;
}

void* Tensor::data() const {
  return static_cast<char*>(storage()->data) + offset() * static_cast<int64_t>(element_size());
}

Buf Tensor::buf() const {
  check(dim() <= kMaxDims, "tensor", "kernels take at most ", kMaxDims, " dims, got shape ", sizes());
  Buf b;
  b.data = data();
  b.dtype = dtype();
  b.ndim = static_cast<int>(dim());
  for (int i = 0; i < b.ndim; ++i) {
    b.size[i] = sizes()[i];
    b.stride[i] = strides()[i];
  }
  return b;
}

Tensor Tensor::alias(const Shape& sz, const Shape& st, int64_t off) const {
  check(sz.size() == st.size(), "alias", "sizes ", sz, " and strides ", st, " differ in length");
  check(static_cast<int64_t>(sz.size()) <= kMaxDims, "alias", "at most ", kMaxDims, " dims are supported, got shape ",
        sz);
  // The furthest element the view can reach must lie inside the storage.
  // The lowest and highest element the view can reach must lie inside the storage; the sums
  // are overflow-checked so that absurd sizes or strides cannot wrap around the check.
  int64_t lo = off, hi = off;
  bool empty_view = false, overflow = false;
  for (size_t i = 0; i < sz.size(); ++i) {
    check(sz[i] >= 0, "alias", "negative size in ", sz);
    if (sz[i] == 0) empty_view = true;
    int64_t reach;
    overflow |= __builtin_mul_overflow(sz[i] > 0 ? sz[i] - 1 : 0, st[i], &reach);
    overflow |= __builtin_add_overflow(st[i] >= 0 ? hi : lo, reach, st[i] >= 0 ? &hi : &lo);
  }
  int64_t cap = static_cast<int64_t>(storage()->nbytes / element_size());
  check(empty_view || (!overflow && lo >= 0 && hi < cap), "alias", "view of shape ", sz, " with strides ", st,
        " at offset ", off, " reaches outside its storage of ", cap, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->sizes = sz;
  impl->strides = st;
  impl->offset = off;
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::detach() const { return alias(sizes(), strides(), offset()); }

Tensor& Tensor::requires_grad_(bool on) {
  check(!on || is_floating(dtype()), "requires_grad_", "only floating tensors can require grad, got ",
        dtype_name(dtype()));
  check(is_leaf(), "requires_grad_", "can only be set on a leaf tensor (this one was computed by ",
        "an op; use detach() first)");
  get().requires_grad = on;
  return *this;
}

// ---------------------------------------------------------------- element access

namespace {
int64_t element_offset(const Tensor& t, const std::vector<int64_t>& index, const char* op) {
  check(static_cast<int64_t>(index.size()) == t.dim(), op, "index has ", index.size(),
        " entries for a tensor of shape ", t.sizes());
  int64_t off = 0;
  for (size_t d = 0; d < index.size(); ++d) {
    int64_t i = index[d], n = t.sizes()[d];
    check(i >= -n && i < n, op, "index ", i, " is out of range for dim ", d, " of size ", n, " (shape ", t.sizes(),
          ")");
    off += (i < 0 ? i + n : i) * t.strides()[d];
  }
  return off;
}

template <class T>
double load_as_double(const void* p) {
  return static_cast<double>(static_cast<acc_t<T>>(*static_cast<const T*>(p)));
}
}  // namespace

// Element access on a device tensor copies the one element through the host (slow, and a
// synchronization point: for tests and small programs, as the header says).
double Tensor::at(const std::vector<int64_t>& index) const {
  int64_t off = element_offset(*this, index, "at");
  const char* p = static_cast<const char*>(data()) + off * static_cast<int64_t>(element_size());
  alignas(8) char host[8];
  if (!device().is_cpu()) {
    hooks_of(device().type).copy(host, Device::cpu(), p, device(), element_size());
    p = host;
  }
  return visit_dtype(dtype(), [&](auto tag) { return load_as_double<decltype(tag)>(p); });
}

void Tensor::set_at(const std::vector<int64_t>& index, double value) {
  int64_t off = element_offset(*this, index, "set_at");
  char* p = static_cast<char*>(data()) + off * static_cast<int64_t>(element_size());
  alignas(8) char host[8];
  visit_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    *reinterpret_cast<T*>(device().is_cpu() ? p : host) = convert_element<T, double>(value);
  });
  if (!device().is_cpu()) hooks_of(device().type).copy(p, device(), host, Device::cpu(), element_size());
  bump_version();
}

double Tensor::item() const {
  check(numel() == 1, "item", "expected a tensor with one element, got shape ", sizes());
  return at(std::vector<int64_t>(static_cast<size_t>(dim()), 0));
}

namespace {
// A contiguous CPU copy of a device tensor (core's own move, without autograd).
Tensor to_host(const Tensor& t) {
  Tensor packed = t;
  if (!t.is_contiguous()) {
    packed = empty(t.sizes(), {.dtype = t.dtype(), .device = t.device()});
    copy_into(packed, t);
  }
  Tensor out = empty(t.sizes(), {.dtype = t.dtype()});
  if (t.numel() > 0)
    hooks_of(t.device().type)
        .copy(out.data(), Device::cpu(), packed.data(), t.device(), static_cast<size_t>(t.numel()) * t.element_size());
  return out;
}
}  // namespace

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor out = empty(sizes(), {.dtype = dtype_of<T>()});
  copy_into(out, device().is_cpu() ? *this : to_host(*this));
  const T* p = out.data_ptr<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bf16> Tensor::to_vector<bf16>() const;
template std::vector<f16> Tensor::to_vector<f16>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

// ---------------------------------------------------------------- factories

Tensor empty(const Shape& sizes, TensorOptions opts) {
  size_t nbytes = checked_nbytes(sizes, opts.dtype, "empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(nbytes, opts.device);
  impl->sizes = sizes;
  impl->strides = contiguous_strides(sizes);
  impl->dtype = opts.dtype;
  Tensor t(std::move(impl));
  if (opts.requires_grad) t.requires_grad_();
  return t;
}

Tensor full(const Shape& sizes, double value, TensorOptions opts) {
  bool rg = opts.requires_grad;
  opts.requires_grad = false;
  Tensor t = empty(sizes, opts);
  fill_raw(t, value);
  if (rg) t.requires_grad_();
  return t;
}
Tensor zeros(const Shape& sizes, TensorOptions opts) { return full(sizes, 0.0, opts); }
Tensor ones(const Shape& sizes, TensorOptions opts) { return full(sizes, 1.0, opts); }
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  check(step != 0, "arange", "step must be non-zero");
  check(std::isfinite(start) && std::isfinite(end), "arange", "start and end must be finite");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  n = std::max<int64_t>(n, 0);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_vector(v, {n}, opts);
}
Tensor arange(int64_t end, TensorOptions opts) { return arange(0.0, static_cast<double>(end), 1.0, opts); }

namespace {
// Fills `dst` (on any device) from the CPU tensor `src` of dst's shape: converted on the CPU,
// then moved as one block.
void fill_from_host(const Tensor& dst, const Tensor& src) {
  if (dst.device().is_cpu()) return copy_into(dst, src);
  Tensor packed = empty(dst.sizes(), {.dtype = dst.dtype()});
  copy_into(packed, src);
  if (dst.numel() > 0)
    hooks_of(dst.device().type)
        .copy(dst.data(), dst.device(), packed.data(), Device::cpu(),
              static_cast<size_t>(dst.numel()) * dst.element_size());
  dst.bump_version();
}
}  // namespace

Tensor from_vector(const std::vector<double>& values, const Shape& sizes, TensorOptions opts) {
  Shape sz = sizes.empty() ? Shape{static_cast<int64_t>(values.size())} : sizes;
  check(shape_numel(sz) == static_cast<int64_t>(values.size()), "from_vector", "got ", values.size(),
        " values for shape ", sz, " (", shape_numel(sz), " elements)");
  Tensor src = from_blob(const_cast<double*>(values.data()), sz, DType::f64);
  bool rg = opts.requires_grad;
  opts.requires_grad = false;
  Tensor t = empty(sz, opts);
  fill_from_host(t, src);
  if (rg) t.requires_grad_();
  return t;
}

Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& sizes, TensorOptions opts) {
  Shape sz = sizes.empty() ? Shape{static_cast<int64_t>(values.size())} : sizes;
  check(shape_numel(sz) == static_cast<int64_t>(values.size()), "from_vector_i64", "got ", values.size(),
        " values for shape ", sz);
  Tensor src = from_blob(const_cast<int64_t*>(values.data()), sz, DType::i64);
  Tensor t = empty(sz, opts);
  fill_from_host(t, src);
  return t;
}

Tensor from_blob(void* data, const Shape& sizes, DType dtype, std::function<void(void*)> deleter) {
  // Validate before the Storage exists: a Storage without a deleter would hand the caller's
  // memory to the allocator when it is destroyed.
  size_t nbytes = checked_nbytes(sizes, dtype, "from_blob");
  check(data != nullptr || nbytes == 0, "from_blob", "null data for shape ", sizes);
  auto st = std::make_shared<Storage>();
  st->deleter = deleter ? std::move(deleter) : [](void*) {};
  st->data = data;
  st->nbytes = nbytes;
  st->device = Device::cpu();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(st);
  impl->sizes = sizes;
  impl->strides = contiguous_strides(sizes);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor empty_like(const Tensor& t, TensorOptions opts) { return empty(t.sizes(), opts); }
Tensor empty_like(const Tensor& t) { return empty(t.sizes(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor full_like(const Tensor& t, double v) { return full(t.sizes(), v, {.dtype = t.dtype(), .device = t.device()}); }

// ---------------------------------------------------------------- memory relations

namespace {
// [first, last] element indices a tensor can touch in its storage (numel > 0).
std::pair<int64_t, int64_t> element_range(const Tensor& t) {
  int64_t lo = t.offset(), hi = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) (t.strides()[d] >= 0 ? hi : lo) += (t.sizes()[d] - 1) * t.strides()[d];
  return {lo, hi};
}
}  // namespace

bool may_overlap(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage() || a.numel() == 0 || b.numel() == 0) return false;
  auto [alo, ahi] = element_range(a);
  auto [blo, bhi] = element_range(b);
  int64_t ea = static_cast<int64_t>(a.element_size()), eb = static_cast<int64_t>(b.element_size());
  return alo * ea < (bhi + 1) * eb && blo * eb < (ahi + 1) * ea;  // byte ranges intersect
}

bool same_elements(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.sizes() == b.sizes() &&
         a.strides() == b.strides() && a.dtype() == b.dtype();
}

bool has_internal_overlap(const Tensor& t) {
  // Sorted by stride, each dim must step past everything the smaller-stride dims can reach.
  std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride|, size) of dims with size > 1
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.sizes()[d] > 1) dims.push_back({std::abs(t.strides()[d]), t.sizes()[d]});
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;
  for (auto [stride, size] : dims) {
    if (stride <= reach) return true;
    reach += (size - 1) * stride;
  }
  return false;
}

// ---------------------------------------------------------------- raw copy and fill

namespace {

// Copies with conversion through the wider of the two accumulate types.
template <class D, class S>
void copy_loop(const Buf& d, const Buf& s) {
  const int64_t n = d.numel();
  auto convert = [](S v) { return convert_element<D, S>(v); };
  if (d.is_contiguous() && s.is_contiguous()) {
    D* dp = d.ptr<D>();
    const S* sp = s.ptr<S>();
    if constexpr (std::is_same_v<D, S>) {
      parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) { std::memcpy(dp + b, sp + b, (e - b) * sizeof(D)); });
    } else {
      parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) dp[i] = convert(sp[i]);
      });
    }
    return;
  }
  // Strided: merge dims that are contiguous with each other in both operands, then copy row by
  // row along the innermost dim, where a unit-stride or broadcast (stride 0) source vectorizes.
  int nd = 0;
  int64_t size[kMaxDims], dst_st[kMaxDims], src_st[kMaxDims];
  for (int i = 0; i < d.ndim; ++i) {
    if (d.size[i] == 1) continue;
    if (nd > 0 && dst_st[nd - 1] == d.stride[i] * d.size[i] && src_st[nd - 1] == s.stride[i] * d.size[i]) {
      size[nd - 1] *= d.size[i];
      dst_st[nd - 1] = d.stride[i];
      src_st[nd - 1] = s.stride[i];
      continue;
    }
    size[nd] = d.size[i];
    dst_st[nd] = d.stride[i];
    src_st[nd] = s.stride[i];
    ++nd;
  }
  if (nd == 0) {
    *d.ptr<D>() = convert(*s.ptr<S>());
    return;
  }
  const int64_t inner = size[nd - 1], rows = n / inner, ds = dst_st[nd - 1], ss = src_st[nd - 1];
  const int64_t* outer[2] = {dst_st, src_st};
  auto copy_rows = [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    StridedCounter<2> c(nd - 1, size, outer);
    c.seek(r0);
    D* dp = d.ptr<D>();
    const S* sp = s.ptr<S>();
    for (int64_t r = r0; r < r1; ++r, c.next()) {
      D* drow = dp + c.off[0];
      const S* srow = sp + c.off[1];
      if (ds == 1 && ss == 0) {
        const D v = convert(*srow);
        for (int64_t j = j0; j < j1; ++j) drow[j] = v;
      } else if (ds == 1 && ss == 1) {
        for (int64_t j = j0; j < j1; ++j) drow[j] = convert(srow[j]);
      } else {
        for (int64_t j = j0; j < j1; ++j) drow[j * ds] = convert(srow[j * ss]);
      }
    }
  };
  if (rows == 1)
    parallel_for(inner, 1 << 15, [&](int64_t j0, int64_t j1) { copy_rows(0, 1, j0, j1); });
  else
    parallel_for(rows, std::max<int64_t>(1, (1 << 14) / inner),
                 [&](int64_t r0, int64_t r1) { copy_rows(r0, r1, 0, inner); });
}

}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  check(dst.device() == src.device(), "copy_into", "devices differ: dst on ", dst.device().str(), ", src on ",
        src.device().str());
  const DeviceAllocatorHooks* hooks = dst.device().is_cpu() ? nullptr : &hooks_of(dst.device().type);
  check(!hooks || hooks->strided_copy, "copy_into", "no copy routine on ", dst.device().str(), kNoBackend);
  if (dst.numel() == 0) return;
  check(!has_internal_overlap(dst), "copy_into", "the destination (shape ", dst.sizes(), ", strides ", dst.strides(),
        ") has elements that share memory (e.g. an expanded tensor); writing into it is ambiguous");
  if (may_overlap(dst, src) && !same_elements(dst, src)) {  // copy an overlapping source out first
    Tensor staged = empty(src.sizes(), {.dtype = src.dtype(), .device = src.device()});
    copy_into(staged, src);
    return copy_into(dst, staged);
  }
  // Broadcast src to dst's shape (trailing alignment, size-1 dims stretch).
  check(src.dim() <= dst.dim(), "copy_into", "cannot broadcast src of shape ", src.sizes(), " to dst of shape ",
        dst.sizes());
  Buf d = dst.buf(), s = dst.buf();
  s.data = src.data();
  s.dtype = src.dtype();
  int64_t lead = dst.dim() - src.dim();
  for (int64_t i = 0; i < dst.dim(); ++i) {
    int64_t ss = i < lead ? 1 : src.sizes()[i - lead];
    check(ss == dst.sizes()[i] || ss == 1, "copy_into", "cannot broadcast src of shape ", src.sizes(),
          " to dst of shape ", dst.sizes());
    s.stride[i] = ss == 1 ? 0 : src.strides()[i - lead];
  }
  if (hooks) {
    hooks->strided_copy(d, s, dst.device().index);
  } else {
    visit_dtype(dst.dtype(), [&](auto dt) {
      visit_dtype(src.dtype(), [&](auto st) { copy_loop<decltype(dt), decltype(st)>(d, s); });
    });
  }
  dst.bump_version();
}

void fill_raw(const Tensor& dst, double value) {
  if (!dst.device().is_cpu()) {
    const DeviceAllocatorHooks& hooks = hooks_of(dst.device().type);
    check(hooks.fill != nullptr, "fill", "no fill routine on ", dst.device().str(), kNoBackend);
    if (dst.numel() == 0) return;
    check(!has_internal_overlap(dst), "fill", "the destination (shape ", dst.sizes(), ", strides ", dst.strides(),
          ") has elements that share memory (e.g. an expanded tensor); writing into it is ambiguous");
    hooks.fill(dst.buf(), value, dst.device().index);
    dst.bump_version();
    return;
  }
  if (dst.is_contiguous()) {
    // The common case (zeros() for every gradient buffer): one conversion, then a straight
    // store loop, or memset for zero bits; the general path below converts per element.
    visit_dtype(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T x = convert_element<T>(value);
      T* p = static_cast<T*>(dst.data());
      const int64_t n = dst.numel();
      const T zero{};
      if (std::memcmp(&x, &zero, sizeof(T)) == 0) {
        parallel_for(n, int64_t{1} << 18, [&](int64_t b, int64_t e) {
          std::memset(static_cast<void*>(p + b), 0, static_cast<size_t>(e - b) * sizeof(T));
        });
      } else {
        parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, x); });
      }
    });
    dst.bump_version();
    return;
  }
  double v = value;
  Tensor src = from_blob(&v, {}, DType::f64);
  copy_into(dst, src);
}

// ---------------------------------------------------------------- printing

namespace {

void print_rec(std::ostream& os, const Tensor& t, std::vector<int64_t>& idx, int64_t d, int indent, bool is_float,
               int prec) {
  int64_t n = t.sizes()[d];
  const int64_t edge = 3;
  bool elide = n > 2 * edge + 1 && t.numel() > 1000;
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (elide && i == edge) {
      os << (d + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    idx[d] = i;
    if (d + 1 == t.dim()) {
      double v = t.at(idx);
      if (t.dtype() == DType::b8) {
        os << (v != 0 ? "true" : "false");
      } else if (is_float) {
        os << std::setprecision(prec) << std::defaultfloat << v;
      } else {
        os << static_cast<int64_t>(v);
      }
    } else {
      print_rec(os, t, idx, d + 1, indent + 1, is_float, prec);
    }
    if (i + 1 < n) os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  const Tensor host = device().is_cpu() ? *this : to_host(*this);
  if (dim() == 0) {
    double v = host.at({});
    if (dtype() == DType::b8)
      os << (v != 0 ? "true" : "false");
    else if (is_floating(dtype()))
      os << std::setprecision(6) << v;
    else
      os << static_cast<int64_t>(v);
  } else if (numel() == 0) {
    os << "[]";
  } else {
    std::vector<int64_t> idx(static_cast<size_t>(dim()), 0);
    print_rec(os, host, idx, 0, 7, is_floating(dtype()), 6);
  }
  os << ", shape=" << shape_str(sizes()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (requires_grad()) os << (grad_fn() ? ", grad_fn" : ", requires_grad=true");
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace tessel
