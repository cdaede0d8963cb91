// kernels/elementwise.cpp — the table of elementwise versions, and facts about each op.
#include "kernels/elementwise.h"

#include "kernels/cuda/register.h"

namespace tessel::kernels {

int ew_arity(EwOp op) {
  if (op == EwOp::where) return 3;
  return op >= EwOp::add ? 2 : 1;
}

const char* ew_name(EwOp op) {
  static const char* names[] = {"neg",
                                "exp",
                                "log",
                                "sqrt",
                                "rsqrt",
                                "abs",
                                "sign",
                                "relu",
                                "gelu_tanh",
                                "gelu_erf",
                                "silu",
                                "sigmoid",
                                "tanh",
                                "sin",
                                "cos",
                                "pow_scalar",
                                "clamp",
                                "add",
                                "sub",
                                "mul",
                                "div",
                                "pow",
                                "maximum",
                                "minimum",
                                "eq",
                                "ne",
                                "lt",
                                "le",
                                "gt",
                                "ge",
                                "relu_backward",
                                "gelu_tanh_backward",
                                "gelu_erf_backward",
                                "silu_backward",
                                "sigmoid_backward",
                                "tanh_backward",
                                "clamp_backward",
                                "where"};
  return names[static_cast<int>(op)];
}

bool ew_is_comparison(EwOp op) { return op >= EwOp::eq && op <= EwOp::ge; }

bool ew_allows_integers(EwOp op) {
  switch (op) {
    case EwOp::neg:
    case EwOp::abs:
    case EwOp::sign:
    case EwOp::relu:
    case EwOp::clamp:
    case EwOp::add:
    case EwOp::sub:
    case EwOp::mul:
    case EwOp::maximum:
    case EwOp::minimum:
    case EwOp::where: return true;
    default: return ew_is_comparison(op);
  }
}

Family<ElementwiseParams>& elementwise_family() {
  static Family<ElementwiseParams>* f = [] {
    auto* fam = make_cpu_family<ElementwiseParams>("elementwise", elementwise_ref, elementwise_cpu);
#if TESSEL_HAVE_CUDA
    register_elementwise_cuda(*fam);
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
