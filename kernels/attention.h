// kernels/attention.h — fused scaled dot-product attention, forward and backward.
//
// Per batch entry (any leading dims; q: [T, D], k: [S, D], v: [S, Dv]):
//   s_ij  = scale * q_i . k_j                      (scale: the op resolves 0 to 1 / sqrt(D))
//   P_ij  = exp(s_ij - lse_i)  over the visible keys j, 0 for the others
//   lse_i = log sum_j exp(s_ij)  (visible j),      o_i = sum_j P_ij v_j
// causal: query i sees key j iff j <= i + (S - T) (the last query sees every key, as in
// decoding with a cache; kernels/softmax.h's causal convention). A query that sees no key at
// all (causal with T > S) is the softmax of nothing but -inf: its o row is NaN, as the
// composed op (matmul, causal_softmax, matmul) gives, and its lse is NaN. S = 0 gives o = 0
// (the empty sum of the composed matmul) and lse = -inf.
//
// Backward, from do = dL/do and the saved o and lse (FlashAttention-2's recomputation: P is
// rebuilt tile by tile from q, k and lse instead of being stored):
//   delta_i = do_i . o_i  (= sum_j P_ij dP_ij)      dP_ij = do_i . v_j
//   dS_ij   = P_ij (dP_ij - delta_i)               (the softmax backward)
//   dv_j = sum_i P_ij do_i,   dq_i = scale sum_j dS_ij k_j,   dk_j = scale sum_i dS_ij q_i
// With a query that sees no key, P's row is NaN in the composed op, so every dk and dv of
// that batch entry and that query's dq row are NaN; the kernels reproduce this.
//
// Shapes and layout: every Buf has the same leading batch dims ([B..., ...]), any strides
// (q, k, v arrive as permuted views [B, heads, T, hd] of [B, T, heads, hd] buffers: no
// contiguity is required and nothing is copied outside a kernel's tiles). Stride 0 (a
// broadcast batch dim) is fine for inputs; outputs must not overlap themselves.
//   q [B..., T, D]  k [B..., S, D]  v [B..., S, Dv]  o, do [B..., T, Dv]  lse [B..., T]
//   dq, dk, dv: the shapes of q, k, v.
// q, k, v, o, do, dq, dk, dv share one floating dtype; lse is f32 (f64 when that dtype is f64).
//
// Algorithm ("FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
// Dao et al. 2022; "FlashAttention-2: Faster Attention with Better Parallelism and Work
// Partitioning", Dao 2023): the forward walks the keys in tiles and keeps, per query row, the
// running max m and sum l of the online softmax, rescaling the output accumulator when m grows,
// so the [T, S] scores never exist beyond one tile; it saves lse = m + log l. The backward
// recomputes each tile's P from lse. Causal tiles wholly above the diagonal are skipped.
//
// Cost per batch entry: forward 4 T S D' flops (2 T S D for q k^T, 2 T S Dv for P v; D' the
// mean of D and Dv) plus T S exponentials; backward 2.5x the forward's flops (q k^T again,
// do v^T, P^T do, dS^T q, dS k) plus T S exponentials. Causal: about half of each. Bytes: the
// inputs and outputs once each, ((T + S) D + (S + T) Dv) elements forward and about twice that
// backward — O(T + S) memory, where the composed op moves O(T S).
#pragma once
#include <cstdint>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

struct AttentionParams {
  bool backward = false;
  bool causal = false;
  double scale = 1;  // already resolved: the op turns the user's 0 into 1 / sqrt(D)
  Buf q, k, v;       // inputs of both directions
  Buf o;             // forward: written; backward: read (delta)
  Buf lse;           // forward: written; backward: read
  Buf dout;          // backward: dL/do
  Buf dq, dk, dv;    // backward: written
};

// The backward's params from the forward's (same inputs, options, and its o and lse).
inline AttentionParams attention_backward_params(AttentionParams forward, const Buf& dout, const Buf& dq, const Buf& dk,
                                                 const Buf& dv) {
  forward.backward = true;
  forward.dout = dout;
  forward.dq = dq;
  forward.dk = dk;
  forward.dv = dv;
  return forward;
}

// The dtype of the saved log-sum-exp for attention over dtype t.
inline DType attention_lse_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// How many leading keys query row i sees: all S, or with the causal mask i + (S - T) + 1,
// clamped to [0, S].
inline int64_t attention_visible_keys(bool causal, int64_t i, int64_t T, int64_t S) {
  if (!causal) return S;
  const int64_t n = i + (S - T) + 1;
  return n < 0 ? 0 : (n > S ? S : n);
}

// The element offset of batch entry `b` (row-major over the first `nb` dims of `sizes`) in x.
inline int64_t attention_batch_offset(const Buf& x, int nb, const int64_t* sizes, int64_t b) {
  int64_t off = 0;
  for (int d = nb - 1; d >= 0; --d) {
    off += (b % sizes[d]) * x.stride[d];
    b /= sizes[d];
  }
  return off;
}

Family<AttentionParams>& attention_family();
void attention_ref(const AttentionParams& p);
void attention_cpu(const AttentionParams& p);

}  // namespace tessel::kernels
