// kernels/index.h — indexed reads and indexed accumulation along one dim.
//
// Both ops walk an iteration shape S (the index's shape, ndim dims) and address one tensor
// through the index along dim `dim`; every other coordinate is shared:
//
//   gather       dense[i] = indexed[i with i[dim] := index[i]]
//   scatter_add  indexed[i with i[dim] := index[i]] += dense[i]
//
// `index` and `dense` are Bufs of shape S (any strides; index may have stride 0, which is how
// index_select / index_add / embedding, whose index is 1-d, broadcast it along the other dims).
// `indexed` has its own size along `dim` (the valid index range) and at least S's size along
// every other dim. The op layer has already checked every index value against that range: a
// kernel never sees an out-of-range index.
//
// index: i32 or i64. indexed and dense: one dtype, any of tessel's (integers are added
// exactly; bf16/f16 add in f32 and round after each add).
//
// Determinism: scatter_add adds the contributions to each element in increasing order of the
// iteration's `dim` coordinate, in every version; writes never race (see cpu/index.cpp).
// Cost: numel(S) reads of index and dense, and as many reads (and writes) of indexed.
#pragma once
#include <vector>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class IndexOp : uint8_t { gather, scatter_add };

struct IndexParams {
  IndexOp op;
  int dim;
  Buf index;    // shape S, i32 or i64
  Buf indexed;  // addressed through the index: gather reads it, scatter_add adds into it
  Buf dense;    // shape S: gather writes it, scatter_add reads it
};

// A 1-d (or 0-d) index viewed over the iteration shape `shape`: stride 0 except along dim. This
// is how index_select, index_add and embedding, whose index is 1-d, hand it to the kernels.
inline Buf broadcast_index(Buf index, const std::vector<int64_t>& shape, int dim) {
  const int64_t along = index.ndim == 1 ? index.stride[0] : 0;
  index.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < index.ndim; ++d) {
    index.size[d] = shape[d];
    index.stride[d] = d == dim ? along : 0;
  }
  return index;
}

Family<IndexParams>& index_family();
void index_ref(const IndexParams& p);
void index_cpu(const IndexParams& p);

// The index value at element offset `off` of an i32 or i64 buffer.
inline int64_t load_index(const Buf& index, int64_t off) {
  return index.dtype == DType::i64 ? index.ptr<int64_t>()[off] : index.ptr<int32_t>()[off];
}

}  // namespace tessel::kernels
