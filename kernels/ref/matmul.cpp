// kernels/ref/matmul.cpp — the oracle:
//   C[b][i, j] = act(alpha * sum_k A[b][i, k] B[b][k, j] + beta C[b][i, j] + bias[j]) (* mul),
// one output element at a time, k ascending. It accumulates in f64 whatever the dtype, so its
// result is (nearly) the exactly rounded answer that every faster version is measured against;
// a kernel that accumulates in f32 should differ from it by at most ~K eps_f32 |A| |B|.
#include "kernels/matmul.h"

namespace tessel::kernels {

void matmul_ref(const MatmulParams& p) {
  check_a_sums(p);
  visit_floating(p.c.dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    const int nb = p.c.ndim - 2;
    const int64_t M = p.c.size[nb], N = p.c.size[nb + 1], K = p.a.size[nb + 1];
    int64_t batch = 1;
    for (int d = 0; d < nb; ++d) batch *= p.c.size[d];
    const int64_t *sa = p.a.stride + nb, *sb = p.b.stride + nb, *sc = p.c.stride + nb;
    const int64_t* st[3] = {p.a.stride, p.b.stride, p.c.stride};
    const T* bias = p.bias.data ? p.bias.ptr<T>() : nullptr;
    StridedCounter<3> it(nb, p.c.size, st);
    for (int64_t bi = 0; bi < batch; ++bi, it.next()) {
      const T* A = p.a.ptr<T>() + it.off[0];
      const T* B = p.b.ptr<T>() + it.off[1];
      T* C = p.c.ptr<T>() + it.off[2];
      T* D = p.dact.data ? p.dact.ptr<T>() + it.off[2] : nullptr;  // same strides as C
      const T* Mu = p.mul.data ? p.mul.ptr<T>() + it.off[2] : nullptr;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<double>(static_cast<acc_t<T>>(A[i * sa[0] + k * sa[1]])) *
                   static_cast<double>(static_cast<acc_t<T>>(B[k * sb[0] + j * sb[1]]));
          T& c = C[i * sc[0] + j * sc[1]];
          double v = p.alpha * acc;
          if (p.beta != 0) v += p.beta * static_cast<double>(static_cast<acc_t<T>>(c));
          if (bias) v += static_cast<double>(static_cast<acc_t<T>>(bias[j * p.bias.stride[0]]));
          const int64_t o = i * sc[0] + j * sc[1];
          c = epilogue_value<T>(v, p.act, D ? D + o : nullptr, Mu ? Mu + o : nullptr);
        }
    }
  });
  matmul_a_sums_rows(p, 0, p.c.size[0]);
}

}  // namespace tessel::kernels
