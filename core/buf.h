// core/buf.h — what a kernel sees of a tensor: a pointer, a dtype, sizes and strides.
//
// Kernels never see Tensor or the autograd tape (DESIGN.md, "One op, one place"); the op that
// calls them has already validated shapes and allocated outputs. Strides count elements and
// may be zero (broadcast) or anything else a view produces; `data` points at element 0.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace tessel {

inline constexpr int kMaxDims = 8;

struct Buf {
  void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= size[i];
    return n;
  }
  bool is_contiguous() const {
    if (numel() == 0) return true;  // nothing to lay out
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (size[i] != 1 && stride[i] != expected) return false;
      expected *= size[i];
    }
    return true;
  }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// Walks the multi-index of a `ndim`-dim shape in row-major order, keeping the element offsets
// of up to N strided operands in step. The building block of every strided loop in the
// reference kernels: clear, and O(1) per step.
template <int N>
struct StridedCounter {
  int ndim;
  const int64_t* size;
  int64_t idx[kMaxDims] = {};
  int64_t off[N] = {};
  const int64_t* strides[N];

  StridedCounter(int nd, const int64_t* sz, const int64_t* const (&st)[N]) : ndim(nd), size(sz) {
    for (int k = 0; k < N; ++k) strides[k] = st[k];
  }
  // Positions the counter at linear (row-major) index `linear`.
  void seek(int64_t linear) {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      idx[d] = size[d] ? linear % size[d] : 0;
      linear = size[d] ? linear / size[d] : 0;
      for (int k = 0; k < N; ++k) off[k] += idx[d] * strides[k][d];
    }
  }
  void next() {
    for (int d = ndim - 1; d >= 0; --d) {
      if (++idx[d] < size[d]) {
        for (int k = 0; k < N; ++k) off[k] += strides[k][d];
        return;
      }
      for (int k = 0; k < N; ++k) off[k] -= (size[d] - 1) * strides[k][d];
      idx[d] = 0;
    }
  }
};

}  // namespace tessel
