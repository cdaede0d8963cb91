// kernels/norm.h — LayerNorm and RMSNorm over the last dim of a [rows, cols] matrix.
//
//   layer_norm   mu = mean_c x,  rstd = 1 / sqrt(mean_c (x - mu)^2 + eps),  xhat = (x - mu) rstd
//                y = xhat * w + b
//   rms_norm     rstd = 1 / sqrt(mean_c x^2 + eps),  xhat = x rstd,  y = xhat * w
// ("Layer Normalization", Ba, Kiros & Hinton 2016; "Root Mean Square Layer Normalization",
// Zhang & Sennrich 2019). w and b are optional (data null: 1 and 0).
//
// Forward saves mu and rstd per row (f32 for f32/bf16/f16 inputs, f64 for f64). Backward, from
// dy and those statistics (g = dy * w, means over the row's cols):
//   layer_norm   dx = rstd (g - mean(g) - xhat mean(g xhat))
//   rms_norm     dx = rstd (g - xhat mean(g xhat))
//   dw = sum_rows dy xhat,   db = sum_rows dy
// One backward pass produces dx, dw and db together (each optional: data null skips it), so x
// and dy are read once.
//
// Layout contract: x, y, dy, dx are contiguous [rows, cols]; w, b, dw, db contiguous [cols];
// mean, rstd contiguous [rows]. The op layer makes its inputs contiguous before calling.
// x, w, b, y, dy, dx, dw, db share one dtype T; mean and rstd have the statistics dtype.
#pragma once
#include <cstdint>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class NormOp : uint8_t { layer_norm, rms_norm, layer_norm_backward, rms_norm_backward };

inline bool norm_is_layer(NormOp op) { return op == NormOp::layer_norm || op == NormOp::layer_norm_backward; }
inline bool norm_is_backward(NormOp op) { return op == NormOp::layer_norm_backward || op == NormOp::rms_norm_backward; }
// The dtype of the saved statistics for inputs of dtype t.
inline DType norm_stat_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

struct NormParams {
  NormOp op;
  int64_t rows = 0, cols = 0;
  double eps = 0;
  Buf x;       // [rows, cols]
  Buf weight;  // [cols], optional
  Buf bias;    // [cols], optional, layer_norm forward only
  Buf mean;    // [rows], layer_norm only: written by forward, read by backward
  Buf rstd;    // [rows]: written by forward, read by backward
  Buf y;       // forward output [rows, cols]
  Buf dy;      // backward input [rows, cols]
  Buf dx;      // backward outputs, each optional
  Buf dweight;
  Buf dbias;
};

Family<NormParams>& norm_family();
void norm_ref(const NormParams& p);
void norm_cpu(const NormParams& p);

}  // namespace tessel::kernels
