// kernels/matmul.cpp — the matmul family table: every CPU rung of the GEMM ladder by name.
//
// Priorities follow the ladder (docs/gemm.md): the op runs the highest-priority version that
// accepts the arguments, so bf16 goes to "cpu_amx" where the CPU has AMX (and the OS grants it),
// else to "cpu_avx512"; on an AVX-512 CPU f32 goes to "cpu_avx512", on an AVX2 one to
// "cpu_avx2", and f64 / f16 (or any other CPU) to the portable "cpu_packed".
// TESSEL_KERNEL_MATMUL=<name> forces one (falling back to the ladder if it declines).
#include "kernels/matmul.h"

#if TESSEL_HAVE_CUDA
#include "kernels/cuda/register.h"
#endif

namespace tessel::kernels {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::gelu_erf: return "gelu_erf";
    case Activation::silu: return "silu";
  }
  return "?";
}

void check_a_sums(const MatmulParams& p) {
  if (p.a_sums.data == nullptr) return;
  check(p.c.ndim == 2 && p.a_sums.ndim == 1 && p.a_sums.size[0] == p.c.size[0] && p.a_sums.dtype == p.c.dtype, "matmul",
        "a_sums needs a 2-d problem and an [M] output of C's dtype");
}

void matmul_a_sums_rows(const MatmulParams& p, int64_t i0, int64_t i1) {
  if (p.a_sums.data == nullptr) return;  // (the caller has run check_a_sums before its GEMM)
  visit_floating(p.c.dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* a = p.a.ptr<T>();
    T* out = p.a_sums.ptr<T>();
    const int64_t K = p.a.size[1];
    for (int64_t i = i0; i < i1; ++i) {
      double acc = 0;
      add_row_sums(a + i * p.a.stride[0], p.a.stride[1], 0, K, acc);
      out[i * p.a_sums.stride[0]] = static_cast<T>(static_cast<acc_t<T>>(acc));
    }
  });
}

Family<MatmulParams>& matmul_family() {
  static Family<MatmulParams>* f = [] {
    auto* fam = new Family<MatmulParams>("matmul");  // never destroyed: usable during static teardown
    fam->add("ref", DeviceType::cpu, 0, matmul_ref);
    fam->add("cpu_blocked", DeviceType::cpu, 5, matmul_blocked);
    fam->add("cpu_packed", DeviceType::cpu, 10, matmul_cpu);
    fam->add("cpu_avx2", DeviceType::cpu, 20, matmul_avx2, matmul_avx2_accepts);
    fam->add("cpu_avx512", DeviceType::cpu, 30, matmul_avx512, matmul_avx512_accepts);
    fam->add("cpu_amx", DeviceType::cpu, 40, matmul_amx, matmul_amx_accepts);
#if TESSEL_HAVE_CUDA
    register_matmul_cuda(*fam);  // cublas, cuda_tc, cuda_regtile, cuda_tiled, cuda_naive (docs/cuda_gemm.md)
#endif
    return fam;
  }();
  return *f;
}

}  // namespace tessel::kernels
