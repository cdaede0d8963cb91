// autograd/ops/copy.cpp — copies and conversions. Their gradients pass straight through
// (converted back to the input's dtype, or moved back to its device).
#include "autograd/ops/copy.h"

#include "autograd/engine.h"

namespace tessel {

namespace {
Tensor copy_to(const Tensor& x, DType dtype, Device device) {
  Tensor out = empty(x.sizes(), {.dtype = dtype, .device = device});
  if (x.device() == device) {  // one device: a strided copy with conversion, on that device
    copy_into(out, x);
    return out;
  }
  // Device moves copy a contiguous block in x's dtype, then convert on the destination.
  const DeviceAllocatorHooks* h = device_hooks(device.is_cpu() ? x.device().type : device.type);
  check(h && h->copy, "to_device", "no copy routine between ", x.device().str(), " and ", device.str(),
        ": tessel was built without CUDA");
  Tensor src;
  {
    NoGradGuard no_grad;  // the packing is part of this copy, not an op of its own
    src = contiguous(x).detach();
  }
  Tensor staged = dtype == x.dtype() ? out : empty(x.sizes(), {.dtype = x.dtype(), .device = device});
  h->copy(staged.data(), device, src.data(), x.device(), static_cast<size_t>(x.numel()) * x.element_size());
  if (!staged.same(out)) copy_into(out, staged);
  return out;
}
}  // namespace

Tensor clone(const Tensor& x) {
  check(x.defined(), "clone", "got an undefined tensor");
  Tensor y = copy_to(x, x.dtype(), x.device());
  if (needs_grad({x})) record("clone", y, {x}, [](const Tensor& g, const Tensor&) { return TensorList{g}; });
  return y;
}

Tensor contiguous(const Tensor& x) {
  check(x.defined(), "contiguous", "got an undefined tensor");
  return x.is_contiguous() ? x : clone(x);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check(x.defined(), "to_dtype", "got an undefined tensor");
  if (x.dtype() == dtype) return x;
  Tensor y = copy_to(x, dtype, x.device());
  if (needs_grad({x}) && is_floating(dtype))
    record("to_dtype", y, {x},
           [from = x.dtype()](const Tensor& g, const Tensor&) { return TensorList{to_dtype(g, from)}; });
  return y;
}

Tensor to_device(const Tensor& x, Device device) {
  check(x.defined(), "to_device", "got an undefined tensor");
  if (x.device() == device) return x;
  Tensor y = copy_to(x, x.dtype(), device);
  if (needs_grad({x}))
    record("to_device", y, {x},
           [from = x.device()](const Tensor& g, const Tensor&) { return TensorList{to_device(g, from)}; });
  return y;
}

Tensor& copy_(Tensor& dst, const Tensor& src) {
  check(dst.defined() && src.defined(), "copy_", "got an undefined tensor");
  check_inplace(dst, "copy_");
  check(dst.device() == src.device(), "copy_", "devices differ: dst on ", dst.device().str(), ", src on ",
        src.device().str(), "; move src with to_device() first");
  copy_into(dst, src);  // checks the broadcast and bumps the version
  return dst;
}

}  // namespace tessel
