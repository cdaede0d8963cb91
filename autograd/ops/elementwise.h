// autograd/ops/elementwise.h — differentiable elementwise ops with NumPy broadcasting.
//
// Binary ops promote dtypes (bool < ints < floats; see promote_types), broadcast their shapes
// and, in backward, sum each input's gradient back to that input's shape. Division and pow of
// integers produce f32, like PyTorch's true division.
#pragma once
#include "autograd/ops/copy.h"
#include "core/tensor.h"

namespace tessel {

// unary
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // gradient zero
Tensor relu(const Tensor& x);
enum class GeluApprox { none, tanh };  // none: the exact erf form
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::none);
Tensor silu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor square(const Tensor& x);
// Clamps into [lo, hi]; pass -inf or +inf for a one-sided clamp. The gradient passes where
// lo <= x <= hi.
Tensor clamp(const Tensor& x, double lo, double hi);

// binary, broadcasting
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties send half the gradient to each
Tensor minimum(const Tensor& a, const Tensor& b);
// comparisons: bool results, no gradient
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// cond ? a : b, elementwise, all three broadcast together; cond must be bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// A 0-dim tensor holding `v`, with the dtype a binary op with `like` should see: like's dtype
// if floating, else i64 for whole numbers and f32 otherwise.
Tensor scalar_like(double v, const Tensor& like);

// Operators (tensor-tensor and tensor-scalar).
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// In place (not differentiated: they throw on a tensor that requires grad while grad mode is
// on). They bump the version counter so that backward notices if a saved tensor changed.
// b broadcasts to a's shape.
Tensor& add_(Tensor& a, const Tensor& b, double alpha = 1.0);  // a += alpha * b
Tensor& sub_(Tensor& a, const Tensor& b);
Tensor& mul_(Tensor& a, const Tensor& b);
Tensor& div_(Tensor& a, const Tensor& b);
Tensor& mul_(Tensor& a, double s);
Tensor& add_(Tensor& a, double s);
Tensor& clamp_(Tensor& a, double lo, double hi);
Tensor& fill_(Tensor& a, double v);
Tensor& zero_(Tensor& a);

// Fused activation gradients (dy * f'(x)); used by the activations' backward. They are not
// differentiable themselves: double backward through these activations throws.
Tensor relu_backward(const Tensor& dy, const Tensor& x);
Tensor gelu_backward(const Tensor& dy, const Tensor& x, GeluApprox approx);
Tensor silu_backward(const Tensor& dy, const Tensor& x);
Tensor sigmoid_backward(const Tensor& dy, const Tensor& y);
Tensor tanh_backward(const Tensor& dy, const Tensor& y);

}  // namespace tessel
