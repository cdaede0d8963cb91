// kernels/optim.h — fused optimizer updates over many tensors in one call.
//
// One pass per element instead of the 4-8 elementwise ops an update is made of ("multi-tensor
// apply", as in NVIDIA Apex / PyTorch's foreach kernels): for each parameter p with gradient g,
//
//   SGD   (PyTorch's form)   g' = g + wd p
//                            b  = g' on the first step, else mu b + (1 - dampening) g'
//                            d  = nesterov ? g' + mu b : b          (d = g' when mu = 0)
//                            p -= lr d
//   Adam  ("Adam: A Method for Stochastic Optimization", Kingma & Ba, 2015)
//                            g' = g + wd p                          (L2; not for AdamW)
//                            m  = b1 m + (1 - b1) g'     v = b2 v + (1 - b2) g'^2
//                            u  = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   AdamW ("Decoupled Weight Decay Regularization", Loshchilov & Hutter, 2019)
//                            p -= lr wd p, then Adam without the L2 term
//                            p -= lr u
//   LAMB  ("Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", You et al.)
//                            r  = u + wd p;   p -= lr (||p|| / ||r||) r   (ratio 1 if a norm is 0)
//
// Tensors are contiguous f32 or f64 (params, grads and state of one dtype). Cost: 2-4 reads and
// 1-3 writes per element; the cpu version streams them once (twice for LAMB, which needs the
// norms before it can update).
#pragma once
#include <vector>

#include "core/buf.h"
#include "kernels/registry.h"

namespace tessel::kernels {

enum class OptimOp : uint8_t { sgd, adam, adamw, lamb };

struct OptimSlot {
  Buf param, grad, m, v;  // m: momentum buffer (SGD) or first moment; v: second moment (Adam)
  bool first = false;     // SGD: the momentum buffer starts as this step's gradient
};

struct OptimParams {
  OptimOp op;
  std::vector<OptimSlot> slots;
  double lr = 0, weight_decay = 0;
  double momentum = 0, dampening = 0;  // SGD
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t step = 1;  // Adam/LAMB bias correction: t, starting at 1
};

Family<OptimParams>& optim_family();
void optim_ref(const OptimParams& p);
void optim_cpu(const OptimParams& p);

}  // namespace tessel::kernels
