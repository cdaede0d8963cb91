// kernels/cuda/matmul_cublas.cu — "cublas": the baseline rung, NVIDIA's cuBLASLt.
//
//   C[b] = act(alpha * A[b] @ B[b] + beta * C[b] + bias)    A: [M, K], B: [K, N], C: [M, N]
//
// cuBLAS is column-major; tessel's operands are row-major views with arbitrary strides. A
// row-major C is the column-major C^T, so a row-major problem is handed over as
//   C^T (N x M) = B^T (N x K) @ A^T (K x M),
// each operand described by whichever of its two strides is 1 (the other is the leading
// dimension; if neither is 1 the version declines and the ladder takes the call). The batch
// dims must collapse into one stride per operand (strided-batched GEMM; stride 0 for a
// broadcast operand). In that orientation D's rows are C's columns, so cuBLASLt's fused
// epilogues BIAS (bias[j] broadcast down the columns of C) and RELU / RELU_BIAS apply as they
// are. GELU and SiLU — and a bias when C is column-major or the bias is strided — run as a
// separate pointwise kernel over C afterwards (one extra read and write of C).
//
// Types: f32 in/out with f32 compute (TF32 only when set_cuda_tf32(true) or TESSEL_CUDA_TF32=1:
// kernels/cuda_options.h), bf16 and f16 in/out with f32 accumulation, f64 with f64 compute.
// One cuBLASLt handle per device and one 32 MiB workspace per (device, stream), created on
// first use and kept for the life of the process; the algorithm cuBLASLt's heuristic picks is
// cached per problem signature so a training step's repeated shapes pay the heuristic once.
// Every cuBLAS status becomes a tessel::Error naming the call.
//
// Cost: 2 M N K flops per batch; the algorithms are NVIDIA's (on sm_90: wgmma + TMA kernels).
//
// Compiled but not yet verified on hardware: no GPU was available when this was written.
#include <cublasLt.h>

#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/matmul_common.cuh"
#include "kernels/cuda_options.h"

namespace tessel::kernels::cuda_gemm {
namespace {

void check_cublas(cublasStatus_t st, const char* call) {
  if (st != CUBLAS_STATUS_SUCCESS)
    fail("matmul", "cuBLAS call ", call, " failed: ", cublasGetStatusString(st), " (status ", static_cast<int>(st),
         ")");
}
#define TESSEL_CUBLAS_CHECK(call) check_cublas((call), #call)

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// Per (device, stream): the handle is per device, the workspace per stream (two streams must
// not share one while their GEMMs may overlap).
struct LtState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

std::mutex& state_mutex() {
  static std::mutex* mu = new std::mutex;  // never destroyed: usable during static teardown
  return *mu;
}

LtState lt_state(cudaStream_t stream) {
  static auto* handles = new std::map<int, cublasLtHandle_t>;
  static auto* workspaces = new std::map<std::pair<int, cudaStream_t>, void*>;
  int dev = 0;
  TESSEL_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(state_mutex());
  cublasLtHandle_t& h = (*handles)[dev];
  if (!h) TESSEL_CUBLAS_CHECK(cublasLtCreate(&h));
  void*& ws = (*workspaces)[{dev, stream}];
  if (!ws) TESSEL_CUDA_CHECK(cudaMalloc(&ws, kWorkspaceBytes));
  return {h, ws};
}

// One matrix operand as cuBLAS sees it: column-major rows x cols with leading dimension ld.
struct LtMatrix {
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  bool transposed = false;  // the op must apply op = T to it
};

// How a [r, c] matrix with strides (sr, sc) is stored: row-major (unit stride along c) or
// column-major (unit along r). A size-1 dim's stride is irrelevant, so it counts as unit.
// Returns false when neither stride is 1 or the leading dimension is too small for cuBLAS.
bool classify(int64_t r, int64_t c, int64_t sr, int64_t sc, bool& row_major, int64_t& ld) {
  if (sc == 1 || c == 1) {
    row_major = true;
    ld = r == 1 ? std::max<int64_t>(c, 1) : sr;
    if (ld >= std::max<int64_t>(c, 1)) return true;
  }
  if (sr == 1 || r == 1) {
    row_major = false;
    ld = c == 1 ? std::max<int64_t>(r, 1) : sc;
    if (ld >= std::max<int64_t>(r, 1)) return true;
  }
  return false;
}

// The batch dims of one operand as one stride, if they collapse (size-1 dims do not count).
bool batch_stride(const GemmArgs& g, const int64_t* bs, int64_t& stride) {
  stride = 0;
  int64_t inner_size = 0, inner_stride = 0;
  bool have_inner = false;
  for (int d = g.nb - 1; d >= 0; --d) {
    if (g.bsize[d] == 1) continue;
    if (!have_inner) {
      stride = bs[d];
      have_inner = true;
    } else if (bs[d] != inner_stride * inner_size) {
      return false;
    }
    inner_size = g.bsize[d];
    inner_stride = bs[d];
  }
  return true;
}

// Everything cuBLASLt needs, derived once from the params.
struct LtProblem {
  cudaDataType_t type;
  cublasComputeType_t compute;
  cudaDataType_t scale;
  LtMatrix a, b, d;  // cuBLASLt's A, B and D (= C) — not tessel's A and B, see the file comment
  const void *pa = nullptr, *pb = nullptr;
  int64_t batch_a = 0, batch_b = 0, batch_d = 0;
  int32_t batch = 1;
  bool c_row_major = true;
  bool fuse_bias = false, fuse_relu = false;
  int align_a = 0, align_b = 0, align_d = 0;
};

int alignment_of(const void* p, int64_t ld, int64_t batch_stride, size_t elt) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | static_cast<uint64_t>(ld) * elt |
                  static_cast<uint64_t>(batch_stride) * elt | 256u;
  return static_cast<int>(bits & (~bits + 1));  // lowest set bit, at most 256
}

bool make_problem(const MatmulParams& p, const GemmArgs& g, LtProblem& lp) {
  const size_t elt = dtype_size(p.c.dtype);
  switch (p.c.dtype) {
    case DType::f32:
      lp.type = CUDA_R_32F;
      lp.compute = cuda_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      lp.scale = CUDA_R_32F;
      break;
    case DType::f64:
      lp.type = CUDA_R_64F;
      lp.compute = CUBLAS_COMPUTE_64F;
      lp.scale = CUDA_R_64F;
      break;
    case DType::bf16:
      lp.type = CUDA_R_16BF;
      lp.compute = CUBLAS_COMPUTE_32F;
      lp.scale = CUDA_R_32F;
      break;
    case DType::f16:
      lp.type = CUDA_R_16F;
      lp.compute = CUBLAS_COMPUTE_32F;
      lp.scale = CUDA_R_32F;
      break;
    default: return false;
  }
  bool a_row = true, b_row = true, c_row = true;
  int64_t lda, ldb, ldc;
  if (!classify(g.M, g.K, g.sam, g.sak, a_row, lda) || !classify(g.K, g.N, g.sbk, g.sbn, b_row, ldb) ||
      !classify(g.M, g.N, g.scm, g.scn, c_row, ldc))
    return false;
  if (!batch_stride(g, g.bsa, lp.batch_a) || !batch_stride(g, g.bsb, lp.batch_b) ||
      !batch_stride(g, g.bsc, lp.batch_d) || g.batch > INT32_MAX)
    return false;
  lp.batch = static_cast<int32_t>(g.batch);
  const uint64_t M = g.M, N = g.N, K = g.K;
  lp.c_row_major = c_row;
  if (c_row) {  // C^T (N x M) = B^T (N x K) @ A^T (K x M)
    lp.d = {N, M, ldc, false};
    lp.a = b_row ? LtMatrix{N, K, ldb, false} : LtMatrix{K, N, ldb, true};
    lp.b = a_row ? LtMatrix{K, M, lda, false} : LtMatrix{M, K, lda, true};
    lp.pa = g.b;
    lp.pb = g.a;
    std::swap(lp.batch_a, lp.batch_b);
  } else {  // C (M x N) = A (M x K) @ B (K x N), all column-major
    lp.d = {M, N, ldc, false};
    lp.a = a_row ? LtMatrix{K, M, lda, true} : LtMatrix{M, K, lda, false};
    lp.b = b_row ? LtMatrix{N, K, ldb, true} : LtMatrix{K, N, ldb, false};
    lp.pa = g.a;
    lp.pb = g.b;
  }
  // D's rows are C's columns only in the row-major orientation; the bias must be packed.
  // GELU and SiLU are never fused (cuBLASLt's GELU is its own approximation), and then neither
  // is the bias: it must be added before the activation.
  const bool fusable_act = g.act == Activation::none || g.act == Activation::relu;
  lp.fuse_bias = fusable_act && g.bias != nullptr && c_row && (g.sbias == 1 || g.N == 1);
  lp.fuse_relu = g.act == Activation::relu;
  lp.align_a = alignment_of(lp.pa, lp.a.ld, lp.batch_a, elt);
  lp.align_b = alignment_of(lp.pb, lp.b.ld, lp.batch_b, elt);
  lp.align_d = alignment_of(g.c, lp.d.ld, lp.batch_d, elt);
  return true;
}

// C = act(C + bias) for the epilogues cuBLASLt did not fuse. One thread per element of C.
template <class T>
__global__ void epilogue_kernel(GemmArgs g, bool add_bias) {
  using Acc = acc_of<T>;
  const int64_t total = g.batch * g.M * g.N;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = e % g.N, i = (e / g.N) % g.M, z = e / (g.N * g.M);
    int64_t oa, ob, oc;
    batch_offsets(g, z, oa, ob, oc);
    T* p = static_cast<T*>(g.c) + oc + i * g.scm + j * g.scn;
    Acc v = to_acc(*p);
    if (add_bias) v += to_acc(static_cast<const T*>(g.bias)[j * g.sbias]);
    *p = from_acc<T>(apply_activation(v, g.act));
  }
}

void run_epilogue(const MatmulParams& p, const GemmArgs& g, bool add_bias) {
  const int64_t total = g.batch * g.M * g.N;
  const unsigned blocks = grid_for(std::min<int64_t>(ceil_div(total, 256), int64_t{1} << 20));
  switch (p.c.dtype) {
    case DType::f32: epilogue_kernel<float><<<blocks, 256, 0, gemm_stream()>>>(g, add_bias); break;
    case DType::f64: epilogue_kernel<double><<<blocks, 256, 0, gemm_stream()>>>(g, add_bias); break;
    case DType::bf16: epilogue_kernel<__nv_bfloat16><<<blocks, 256, 0, gemm_stream()>>>(g, add_bias); break;
    case DType::f16: epilogue_kernel<__half><<<blocks, 256, 0, gemm_stream()>>>(g, add_bias); break;
    default: fail("matmul", "cublas: unsupported dtype ", dtype_name(p.c.dtype));
  }
  TESSEL_CUDA_CHECK_LAUNCH("matmul (cublas epilogue)");
}

// RAII for the cuBLASLt descriptors of one call.
struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void make_layout(cublasLtMatrixLayout_t& layout, cudaDataType_t type, const LtMatrix& m, int32_t batch,
                 int64_t batch_stride) {
  TESSEL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, m.rows, m.cols, m.ld));
  if (batch > 1) {
    TESSEL_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
    TESSEL_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                         &batch_stride, sizeof batch_stride));
  }
}

// The heuristic's choice per problem signature (dtype, compute, shapes, lds, batch, epilogue,
// alignments): a training step repeats the same few shapes, and the heuristic costs ~10 us.
std::string signature(const LtProblem& lp, cublasLtEpilogue_t epi, int dev) {
  const int64_t v[] = {lp.type,
                       lp.compute,
                       static_cast<int64_t>(lp.a.rows),
                       static_cast<int64_t>(lp.a.cols),
                       lp.a.ld,
                       lp.a.transposed,
                       static_cast<int64_t>(lp.b.rows),
                       static_cast<int64_t>(lp.b.cols),
                       lp.b.ld,
                       lp.b.transposed,
                       static_cast<int64_t>(lp.d.rows),
                       static_cast<int64_t>(lp.d.cols),
                       lp.d.ld,
                       lp.batch,
                       lp.batch_a,
                       lp.batch_b,
                       lp.batch_d,
                       epi,
                       lp.align_a,
                       lp.align_b,
                       lp.align_d,
                       dev};
  return std::string(reinterpret_cast<const char*>(v), sizeof v);
}

// Runs one cuBLASLt matmul with the given epilogue; false when no algorithm supports it.
bool run_lt(const MatmulParams& p, const GemmArgs& g, const LtProblem& lp, cublasLtEpilogue_t epi) {
  cudaStream_t stream = gemm_stream();
  const LtState st = lt_state(stream);
  LtDescs ds;
  TESSEL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, lp.compute, lp.scale));
  const cublasOperation_t ta = lp.a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = lp.b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  TESSEL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  TESSEL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  TESSEL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  if (epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_RELU_BIAS)
    TESSEL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
  make_layout(ds.a, lp.type, lp.a, lp.batch, lp.batch_a);
  make_layout(ds.b, lp.type, lp.b, lp.batch, lp.batch_b);
  make_layout(ds.d, lp.type, lp.d, lp.batch, lp.batch_d);

  int dev = 0;
  TESSEL_CUDA_CHECK(cudaGetDevice(&dev));
  static auto* cache = new std::map<std::string, cublasLtMatmulHeuristicResult_t>;
  const std::string key = signature(lp, epi, dev);
  cublasLtMatmulHeuristicResult_t result;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(state_mutex());
    auto it = cache->find(key);
    if (it != cache->end()) {
      result = it->second;
      found = true;
    }
  }
  if (!found) {
    TESSEL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&ds.pref));
    const uint64_t ws = kWorkspaceBytes;
    TESSEL_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const uint32_t al[4] = {static_cast<uint32_t>(lp.align_a), static_cast<uint32_t>(lp.align_b),
                            static_cast<uint32_t>(lp.align_d), static_cast<uint32_t>(lp.align_d)};
    const cublasLtMatmulPreferenceAttributes_t which[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      TESSEL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(ds.pref, which[i], &al[i], sizeof al[i]));
    int returned = 0;
    const cublasStatus_t hs =
        cublasLtMatmulAlgoGetHeuristic(st.handle, ds.op, ds.a, ds.b, ds.d, ds.d, ds.pref, 1, &result, &returned);
    if (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && returned == 0)) return false;
    TESSEL_CUBLAS_CHECK(hs);
    std::lock_guard<std::mutex> lock(state_mutex());
    (*cache)[key] = result;
  }

  const float alpha32 = static_cast<float>(p.alpha), beta32 = static_cast<float>(p.beta);
  const double alpha64 = p.alpha, beta64 = p.beta;
  const bool f64 = lp.scale == CUDA_R_64F;
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : static_cast<const void*>(&alpha32);
  const void* beta = f64 ? static_cast<const void*>(&beta64) : static_cast<const void*>(&beta32);
  // beta == 0 never reads C (cuBLAS semantics match tessel's), so C may hold NaN.
  TESSEL_CUBLAS_CHECK(cublasLtMatmul(st.handle, ds.op, alpha, lp.pa, ds.a, lp.pb, ds.b, beta, g.c, ds.d, g.c, ds.d,
                                     &result.algo, st.workspace, kWorkspaceBytes, stream));
  return true;
}

// When cuBLASLt has no algorithm for an argument set it accepted, the best of our rungs runs.
void run_our_ladder(const MatmulParams& p) {
  if (matmul_cuda_wgmma_accepts(p)) return matmul_cuda_wgmma(p);
  if (matmul_cuda_tc_accepts(p)) return matmul_cuda_tc(p);
  if (matmul_cuda_regtile_accepts(p)) return matmul_cuda_regtile(p);
  matmul_cuda_tiled(p);
}

}  // namespace

bool matmul_cublas_accepts(const MatmulParams& p) {
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return true;
  LtProblem lp;
  // K == 0 is a pure epilogue; cuBLASLt's K >= 1 rule is simplest honoured by declining.
  return g.K > 0 && make_problem(p, g, lp);
}

void matmul_cublas(const MatmulParams& p) {
  const GemmArgs g = make_args(p);
  if (empty_problem(g)) return;
  LtProblem lp;
  check(g.K > 0 && make_problem(p, g, lp), "matmul", "cublas: these operand layouts cannot be expressed in cuBLAS");
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (lp.fuse_bias)
    epi = lp.fuse_relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  else if (lp.fuse_relu && g.bias == nullptr)
    epi = CUBLASLT_EPILOGUE_RELU;
  bool done = epi != CUBLASLT_EPILOGUE_DEFAULT && run_lt(p, g, lp, epi);
  if (done) return;
  // Unfused: the plain GEMM, then bias and activation in one pointwise pass over C.
  if (!run_lt(p, g, lp, CUBLASLT_EPILOGUE_DEFAULT)) return run_our_ladder(p);
  if (g.bias != nullptr || g.act != Activation::none) run_epilogue(p, g, g.bias != nullptr);
}

}  // namespace tessel::kernels::cuda_gemm
