// tools/bench_peers.h — in-process GEMM peers for `tessel bench gemm`: oneDNN's dnnl_sgemm and
// OpenBLAS's cblas_sgemm, each compiled in only when CMake found the library at configure time
// (tools/CMakeLists.txt: TESSEL_CLI_HAVE_DNNL, TESSEL_CLI_HAVE_OPENBLAS).
//
// A small interface on purpose: the command sees a list of peers with one sgemm entry point
// each, and never includes a peer's header, so a build without the libraries differs only in
// what gemm_peers() returns and what missing_gemm_peers() explains.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessel::cli {

// Row-major C = alpha op(A) op(B) + beta C, BLAS conventions: op(A) is [m, k], op(B) [k, n].
struct SgemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0;
  float* c = nullptr;
  int64_t ldc = 0;
};

struct GemmPeer {
  std::string name;                  // "onednn-2.6.3", "openblas-0.3.21-haswell" (stable, lower-case)
  std::string key;                   // what --peer selects: "onednn" or "openblas"
  void (*set_threads)(int threads);  // the thread count the next sgemm calls use
  void (*sgemm)(const SgemmArgs&);   // throws tessel::Error if the library reports a failure
};

std::vector<GemmPeer> gemm_peers();             // the peers built into this program
std::vector<std::string> missing_gemm_peers();  // one sentence per peer that is not built in

}  // namespace tessel::cli
