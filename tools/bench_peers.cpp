// tools/bench_peers.cpp — the oneDNN and OpenBLAS sgemm calls behind tools/bench_peers.h.
//
// Thread counts: oneDNN (Debian's build uses the OpenMP runtime) runs on omp_get_max_threads()
// threads, so set_threads() sets the OpenMP default; OpenBLAS (Debian's pthread build) has its
// own pool, sized by openblas_set_num_threads(). OpenBLAS picks its kernels at load time from
// the CPU, or from OPENBLAS_CORETYPE when set; the core it chose is part of the peer's name.
#include "tools/bench_peers.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if TESSEL_CLI_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#if TESSEL_CLI_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace tessel::cli {
namespace {

[[maybe_unused]] std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

#if TESSEL_CLI_HAVE_DNNL
void dnnl_threads(int threads) {
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

void dnnl_call(const SgemmArgs& g) {
  const dnnl_status_t st = dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, g.alpha, g.a, g.lda,
                                      g.b, g.ldb, g.beta, g.c, g.ldc);
  check(st == dnnl_success, "dnnl_sgemm", "failed with status ", static_cast<int>(st), " for m=", g.m, " n=", g.n,
        " k=", g.k);
}

std::string dnnl_name() {
  const dnnl_version_t* v = dnnl_version();
  return "onednn-" + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}
#endif

#if TESSEL_CLI_HAVE_OPENBLAS
void openblas_threads(int threads) { openblas_set_num_threads(threads); }

void openblas_call(const SgemmArgs& g) {
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(g.m), static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
              static_cast<blasint>(g.lda), g.b, static_cast<blasint>(g.ldb), g.beta, g.c, static_cast<blasint>(g.ldc));
}

std::string openblas_name() {
  // OPENBLAS_VERSION is " OpenBLAS 0.3.21 ": keep the number.
  std::string v = OPENBLAS_VERSION;
  v.erase(std::remove(v.begin(), v.end(), ' '), v.end());
  v = lower(v);
  if (v.rfind("openblas", 0) == 0) v = v.substr(8);
  return "openblas-" + v + "-" + lower(openblas_get_corename());
}
#endif

}  // namespace

std::vector<GemmPeer> gemm_peers() {
  std::vector<GemmPeer> peers;
#if TESSEL_CLI_HAVE_DNNL
  peers.push_back({dnnl_name(), "onednn", dnnl_threads, dnnl_call});
#endif
#if TESSEL_CLI_HAVE_OPENBLAS
  peers.push_back({openblas_name(), "openblas", openblas_threads, openblas_call});
#endif
  return peers;
}

std::vector<std::string> missing_gemm_peers() {
  std::vector<std::string> missing;
#if !TESSEL_CLI_HAVE_DNNL
  missing.push_back(
      "oneDNN is not built in: libdnnl was not found when tessel was configured (Debian: apt-get install "
      "libdnnl-dev, then re-run cmake)");
#endif
#if !TESSEL_CLI_HAVE_OPENBLAS
  missing.push_back(
      "OpenBLAS is not built in: libopenblas and cblas.h were not found when tessel was configured (Debian: "
      "apt-get install libopenblas-dev, then re-run cmake)");
#endif
  return missing;
}

}  // namespace tessel::cli
