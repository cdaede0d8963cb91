// bench/matmul_bench.cpp — every CPU rung of the GEMM ladder next to its peers, in one process.
//
// Entries (each reports GFLOP/s = 2 M N K / time and pct_peak against the measured peak for its
// thread count: the f32 FMA peak, or for bf16 the vdpbf16ps peak, bench/peak.h):
//   matmul_f32/<version>/n<N>/t<threads>     squares 512, 1024, 2048 on 1 and 2 threads (ref: 128 only)
//   matmul_xf/<version>/<M>x<N>x<K>_<tr>/t2  transformer shapes: M = 4096 tokens, K, N in {256, 512, 1024},
//                                            nn (dX = dY W), nt (Y = X W^T), and tn with K = 4096
//                                            (dW = dY^T X: M, N in {256, 512, 1024})
//   matmul_bf16/<version>/n<N>/t<threads>    bf16 in, bf16 out, f32 accumulation, 1024 and 2048
// Peers, when the build found them (bench/CMakeLists.txt): oneDNN's dnnl_sgemm ("onednn") and
// OpenBLAS's cblas_sgemm ("openblas-<core>", the kernel OpenBLAS picked at run time; run again
// with OPENBLAS_CORETYPE=SkylakeX in the environment for its AVX-512 kernel — a separate
// process, since OpenBLAS chooses once at load). All entries of one shape are registered next to
// each other, so they run back to back and see the same machine load: compare them as ratios.
//
// Before any entry is timed, its result on the timed operands is checked against ref on the
// first rows of C (ref in f64 over a few rows is cheap even at n = 2048); an entry that
// disagrees is reported as an error, not timed.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <functional>

#include "bench/report.h"
#include "kernels/matmul.h"
#include "tessel.h"

#ifdef TESSEL_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef TESSEL_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using namespace tessel;

enum class Trans { nn, nt, tn };

// C[M, N] = op(A) op(B): "tn" stores A as [K, M], "nt" stores B as [N, K] (a Linear weight).
struct Problem {
  int64_t M, N, K;
  Trans tr;
  DType dt;
  Tensor a_store, b_store, a, b, c;
  Problem(int64_t m, int64_t n, int64_t k, Trans t, DType d) : M(m), N(n), K(k), tr(t), dt(d) {
    a_store = t == Trans::tn ? randn({K, M}, {.dtype = d}) : randn({M, K}, {.dtype = d});
    b_store = t == Trans::nt ? randn({N, K}, {.dtype = d}) : randn({K, N}, {.dtype = d});
    a = t == Trans::tn ? transpose(a_store, 0, 1) : a_store;
    b = t == Trans::nt ? transpose(b_store, 0, 1) : b_store;
    c = empty({M, N}, {.dtype = d});
  }
  kernels::MatmulParams params() const { return {.a = a.buf(), .b = b.buf(), .c = c.buf()}; }
  double flops() const { return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K); }
};

// Compares the first rows of c (after one run) with ref in f64 plus the natural error bound.
// Returns an empty string when they agree, else what differs.
std::string check_against_ref(const Problem& pr) {
  const int64_t r = std::min<int64_t>(pr.M, 4);
  Tensor a_rows = slice(pr.a, 0, 0, r);
  Tensor want = empty({r, pr.N}, {.dtype = DType::f64}), absp = empty({r, pr.N}, {.dtype = DType::f64});
  kernels::MatmulParams p;
  Tensor a64 = to_dtype(a_rows, DType::f64), b64 = to_dtype(pr.b, DType::f64);
  p.a = a64.buf();
  p.b = b64.buf();
  p.c = want.buf();
  kernels::matmul_family().run_version("ref", p);
  Tensor aa = abs(a64), ab = abs(b64);
  p.a = aa.buf();
  p.b = ab.buf();
  p.c = absp.buf();
  kernels::matmul_family().run_version("ref", p);
  const auto g = to_dtype(slice(pr.c, 0, 0, r), DType::f64).to_vector<double>();
  const auto w = want.to_vector<double>(), s = absp.to_vector<double>();
  const double u = std::ldexp(1.0, -24), u_out = pr.dt == DType::bf16 ? std::ldexp(1.0, -8) : u;
  for (size_t i = 0; i < g.size(); ++i) {
    const double bound = 4 * (static_cast<double>(pr.K) + 2) * u * s[i] + 2 * u_out * std::fabs(w[i]) + 1e-30;
    if (!(std::fabs(g[i] - w[i]) <= bound))
      return "element " + std::to_string(i) + " = " + std::to_string(g[i]) + ", ref " + std::to_string(w[i]);
  }
  return "";
}

void set_threads(int threads) {
  set_num_threads(threads);
  omp_set_num_threads(threads);  // oneDNN (OpenMP build) uses omp_get_max_threads()
#ifdef TESSEL_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

// One entry: `run` computes pr.c; checked once against ref, then timed.
void bench_entry(benchmark::State& state, const std::function<std::unique_ptr<Problem>()>& make,
                 const std::function<void(Problem&)>& run, int threads) {
  set_threads(threads);
  auto pr = make();
  run(*pr);  // warm-up (packing scratch, thread pool, caches)
  const std::string err = check_against_ref(*pr);
  if (!err.empty()) {
    state.SkipWithError(("result disagrees with ref: " + err).c_str());
    return;
  }
  const double secs = bench::timed_loop(state, [&] {
    run(*pr);
    benchmark::DoNotOptimize(pr->c.data());
    benchmark::ClobberMemory();
  });
  bench::report_flops(state, secs, pr->flops(), pr->dt == DType::bf16);
}

#ifdef TESSEL_HAVE_DNNL
void run_dnnl(Problem& pr) {
  const char ta = pr.tr == Trans::tn ? 'T' : 'N', tb = pr.tr == Trans::nt ? 'T' : 'N';
  const int64_t lda = pr.tr == Trans::tn ? pr.M : pr.K, ldb = pr.tr == Trans::nt ? pr.K : pr.N;
  const dnnl_status_t st = dnnl_sgemm(ta, tb, pr.M, pr.N, pr.K, 1.0f, pr.a_store.data_ptr<float>(), lda,
                                      pr.b_store.data_ptr<float>(), ldb, 0.0f, pr.c.data_ptr<float>(), pr.N);
  check(st == dnnl_success, "matmul_bench", "dnnl_sgemm failed with status ", static_cast<int>(st));
}
#endif

#ifdef TESSEL_HAVE_OPENBLAS
void run_openblas(Problem& pr) {
  const CBLAS_TRANSPOSE ta = pr.tr == Trans::tn ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = pr.tr == Trans::nt ? CblasTrans : CblasNoTrans;
  const int lda = static_cast<int>(pr.tr == Trans::tn ? pr.M : pr.K);
  const int ldb = static_cast<int>(pr.tr == Trans::nt ? pr.K : pr.N);
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(pr.M), static_cast<int>(pr.N), static_cast<int>(pr.K), 1.0f,
              pr.a_store.data_ptr<float>(), lda, pr.b_store.data_ptr<float>(), ldb, 0.0f, pr.c.data_ptr<float>(),
              static_cast<int>(pr.N));
}
std::string openblas_name() {
  std::string core = openblas_get_corename();
  for (char& ch : core) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string name = "openblas-";
  name += core;
  return name;
}
#endif

// snprintf, not std::string operator+: GCC 12's -Wrestrict misfires on `"n" + std::to_string(n)`.
std::string fmt(const char* f, int64_t x, int64_t y = 0, int64_t z = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, static_cast<long>(x), static_cast<long>(y), static_cast<long>(z));
  return buf;
}

// Registers every version that accepts the shape, then the peers, for one problem.
void register_shape(const std::string& group, const std::string& shape, int64_t M, int64_t N, int64_t K, Trans tr,
                    DType dt, int threads, bool with_slow) {
  auto make = [=] { return std::make_unique<Problem>(M, N, K, tr, dt); };
  auto add = [&](const std::string& variant, std::function<void(Problem&)> run) {
    std::string name = group;
    name += "/";
    name += variant;
    name += "/";
    name += shape;
    name += fmt("/t%ld", threads);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { bench_entry(s, make, run, threads); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.3);
  };
  // Whether a version accepts depends only on dtype and CPU, so a tiny probe problem decides.
  Problem probe(2, 2, 2, tr, dt);
  for (const std::string& v : kernels::matmul_family().versions(DeviceType::cpu)) {
    if (v == "ref" && M * N * K > (int64_t{1} << 21)) continue;
    if (!with_slow && (v == "cpu_blocked" || v == "cpu_packed" || v == "cpu_avx2")) continue;
    if (!kernels::matmul_family().accepts(v, probe.params())) continue;
    add(v, [v](Problem& pr) { kernels::matmul_family().run_version(v, pr.params()); });
  }
  if (dt != DType::f32) return;  // the peers' bf16 GEMMs have other output types: not comparable
#ifdef TESSEL_HAVE_DNNL
  add("onednn", run_dnnl);
#endif
#ifdef TESSEL_HAVE_OPENBLAS
  add(openblas_name(), run_openblas);
#endif
}

// The training epilogues on the ViT's MLP shapes, on 1 and 2 threads, beside the plain GEMM of the same
// shape in group matmul_vit: fc1's forward with bias, erf-GELU and act'(z) kept (MatmulParams::dact,
// non-temporal stores) and fc2's input gradient times act'(z) (MatmulParams::mul). Correctness is
// tests/kernels/matmul_test.cpp's; this times what the epilogue adds.
void bench_epilogue(benchmark::State& state, Trans tr, bool dact, int threads) {
  set_threads(threads);
  Problem pr(128 * 17, 512, 128, tr, DType::f32);
  // Weights at a Linear's initial scale, so z ~ N(0, 1) as in training. (With unscaled randn
  // weights z ~ N(0, 128): many z < -13 give subnormal Phi(z), and every subnormal result costs a
  // microcode assist, 8x slower.)
  {
    NoGradGuard ng;
    mul_(pr.b_store, 1.0 / std::sqrt(static_cast<double>(pr.K)));
  }
  Tensor bias = randn({pr.N}), extra = dact ? empty({pr.M, pr.N}) : randn({pr.M, pr.N});
  kernels::MatmulParams p = pr.params();
  if (dact) {
    p.bias = bias.buf();
    p.act = kernels::Activation::gelu_erf;
    p.dact = extra.buf();
  } else {
    p.mul = extra.buf();
  }
  kernels::matmul_family().run(DeviceType::cpu, p);  // warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::matmul_family().run(DeviceType::cpu, p); });
  bench::report_flops(state, secs, pr.flops(), false);
}

// The weight gradient of fc1 with its bias gradient (MatmulParams::a_sums: dz's column sums,
// added up while the driver packs dz^T), beside the plain TN GEMM of group matmul_vit. The
// difference is what the bias gradient costs inside the GEMM (its own column-sum pass cost about
// 2% of the one-thread ViT step). Correctness: tests/kernels/matmul_test.cpp.
void bench_dw_bias(benchmark::State& state, int threads) {
  set_threads(threads);
  Problem pr(512, 128, 128 * 17, Trans::tn, DType::f32);
  Tensor sums = empty({pr.M});
  kernels::MatmulParams p = pr.params();
  p.a_sums = sums.buf();
  kernels::matmul_family().run(DeviceType::cpu, p);  // warm-up
  const double secs = bench::timed_loop(state, [&] { kernels::matmul_family().run(DeviceType::cpu, p); });
  bench::report_flops(state, secs, pr.flops(), false);
}

const bool registered = [] {
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(fmt("matmul_vit_epilogue/fc1_dw_bias_sums/512x128x2176_tn/t%d", threads).c_str(),
                                 bench_dw_bias, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(fmt("matmul_vit_epilogue/fc1_bias_gelu_dact/2176x512x128_nt/t%d", threads).c_str(),
                                 bench_epilogue, Trans::nt, true, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(fmt("matmul_vit_epilogue/fc2_dx_mul/2176x512x128_nn/t%d", threads).c_str(),
                                 bench_epilogue, Trans::nn, false, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
#ifndef TESSEL_HAVE_DNNL
  std::fprintf(stderr, "matmul_bench: oneDNN not found at build time; its peer entries are skipped\n");
#endif
#ifndef TESSEL_HAVE_OPENBLAS
  std::fprintf(stderr, "matmul_bench: OpenBLAS not found at build time; its peer entries are skipped\n");
#endif
  register_shape("matmul_f32", "n128", 128, 128, 128, Trans::nn, DType::f32, 2, true);
  for (int64_t n : {512, 1024, 2048})
    for (int threads : {2, 1})
      register_shape("matmul_f32", fmt("n%ld", n), n, n, n, Trans::nn, DType::f32, threads, true);
  for (int64_t k : {256, 512, 1024})
    for (int64_t n : {256, 512, 1024}) {
      register_shape("matmul_xf", fmt("4096x%ldx%ld_nn", n, k), 4096, n, k, Trans::nn, DType::f32, 2, false);
      register_shape("matmul_xf", fmt("4096x%ldx%ld_nt", n, k), 4096, n, k, Trans::nt, DType::f32, 2, false);
      register_shape("matmul_xf", fmt("%ldx%ldx4096_tn", n, k), n, k, 4096, Trans::tn, DType::f32, 2, false);
    }
  // The linear layers of the ViT training step (tessel bench peers' vit_fmnist_step: 128 images of
  // 17 tokens, width 128, MLP 512), on one thread: forward x W^T (nt), input gradient dY W (nn),
  // weight gradient dY^T X (tn). Small K and N are where a GEMM's per-tile overheads show.
  constexpr int64_t kTok = 128 * 17;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{384, 128}, {128, 128}, {512, 128}, {128, 512}}) {
    register_shape("matmul_vit", fmt("%ldx%ldx%ld_nt", kTok, n, k), kTok, n, k, Trans::nt, DType::f32, 1, false);
    register_shape("matmul_vit", fmt("%ldx%ldx%ld_nn", kTok, k, n), kTok, k, n, Trans::nn, DType::f32, 1, false);
    for (int threads : {1, 2})  // the weight gradients: K = 2176 against a small C (split K)
      register_shape("matmul_vit", fmt("%ldx%ldx%ld_tn", n, k, kTok), n, k, kTok, Trans::tn, DType::f32, threads,
                     false);
  }
  for (int64_t n : {1024, 2048})
    for (int threads : {2, 1})
      register_shape("matmul_bf16", fmt("n%ld", n), n, n, n, Trans::nn, DType::bf16, threads, n == 1024);
  return true;
}();

}  // namespace
