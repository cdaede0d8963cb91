// tools/cmd_bench.cpp — `tessel bench gemm | ops | peers`: our kernel versions and the peers,
// timed side by side in one run, with ratios (docs/bench.md explains every column).
//
//   gemm   every registered matmul version on f32 GEMMs (squares, transformer shapes and the
//          transposes their backward uses, one thread and all), next to oneDNN's dnnl_sgemm and
//          OpenBLAS's cblas_sgemm called in this process (tools/bench_peers.h). Every version and
//          peer is first checked against `ref` on small-integer operands, where any summation
//          order gives the exact answer, so the check demands equality. OpenBLAS is reported as
//          it runs by default and again, on an AVX-512 CPU, from a child process started with
//          OPENBLAS_CORETYPE=SkylakeX (OpenBLAS reads it once, when it loads).
//   ops    every registered version of the memory-bound families (elementwise, reduce,
//          softmax, norm, loss), forward and backward, in GB/s; no in-process peer.
//   peers  each workload of tools/bench_workloads.h in tessel and in PyTorch (a persistent
//          bench/peers/pytorch_peer.py child), samples alternating.
//
// Every figure follows tools/bench_timing.h (warm-up, >= 10 samples of >= 20 ms, median,
// contenders interleaved). ratio = peer ms / tessel ms: above 1, tessel is faster.
// --json prints one object per line on stdout; notes go to stderr so stdout stays parseable.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/peak.h"
#include "core/cpu_features.h"
#include "core/cuda.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tessel.h"
#include "tools/bench_peers.h"
#include "tools/bench_timing.h"
#include "tools/bench_workloads.h"
#include "tools/command.h"
#include "tools/peer_process.h"

namespace tessel::cli {
namespace {

using Json = nlohmann::ordered_json;

struct Options {
  bool json = false;
  bool quick = false;
  int samples = 0;                    // 0: the protocol's default
  double min_sample_ms = 0;           // 0: the protocol's default
  std::vector<std::string> peers;     // gemm: which in-process peers (empty: all)
  std::vector<std::string> variants;  // which tessel versions (empty: all)
  std::vector<std::string> families;  // ops: which families (empty: all)
  std::vector<std::string> names;     // peers: which workloads (empty: all)
  std::string gemm_set = "default";   // gemm: which shapes (default, transformer, skinny)
  bool cpu_clock = false;             // time by process CPU time (one thread only)
  std::string device = "cpu";         // peers: where both sides run (cpu, cuda)
};

Protocol protocol(const Options& o) {
  Protocol p = o.quick ? Protocol::quick() : Protocol{};
  if (o.samples > 0) p.samples = o.samples;
  if (o.min_sample_ms > 0) p.min_sample_ms = o.min_sample_ms;
  if (o.cpu_clock) {
    check(get_num_threads() == 1, "tessel bench",
          "--cpu-clock measures one thread's running time; run it with --threads 1 (got ", get_num_threads(), ")");
    p.cpu_clock = true;
  }
  return p;
}

bool selected(const std::vector<std::string>& filter, const std::string& name) {
  if (filter.empty()) return true;
  for (const std::string& f : filter)
    if (f == name) return true;
  return false;
}

// The measured peak, except in --quick mode (tests), which skips the probe's second or two:
// pct_peak is then null.
const bench::Peak* peak_for(const Options& o) {
  if (o.quick) return nullptr;
  const bench::Peak& p = bench::measured_peak();
  return &p;
}

Json num_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// ---------------------------------------------------------------- results and tables

struct Entry {
  explicit Entry(std::string name_, double ms_ = NAN, std::string note_ = "", std::string env_ = "")
      : name(std::move(name_)), ms(ms_), note(std::move(note_)), env(std::move(env_)) {}
  std::string name;  // tessel version or peer name
  double ms;         // NAN: not timed (note says why)
  std::string note;
  std::string env;  // e.g. "OPENBLAS_CORETYPE=SkylakeX" for a peer timed in a child process
};

// One shape at one thread count: our versions and the peers, timed together.
struct CaseResult {
  std::string family, op, shape;
  int threads = 1;
  double work = 0;       // flops or bytes of one operation
  bool is_flops = true;  // GFLOP/s against the FMA peak, else GB/s against the bandwidth
  std::vector<Entry> ours, peers;
  std::string peer_note;  // why there is no peer at all
};

double rate(const CaseResult& c, double ms) { return c.work / (ms * 1e-3) / 1e9; }

double pct_peak(const CaseResult& c, double ms, const bench::Peak* peak) {
  if (!peak || !std::isfinite(ms)) return NAN;
  const double denom = c.is_flops ? bench::fma_peak_gflops(c.threads) : peak->bandwidth_gbs;
  return 100.0 * rate(c, ms) / denom;
}

// The JSON lines of one case: one per (version, peer) pair, or per version with "peer": null.
std::vector<Json> json_rows(const CaseResult& c, const bench::Peak* peak) {
  std::vector<Json> rows;
  for (const Entry& v : c.ours) {
    auto row = [&](const Entry* p) {
      Json j;
      j["family"] = c.family;
      j["op"] = c.op;
      j["variant"] = v.name;
      j["shape"] = c.shape;
      j["threads"] = c.threads;
      j["ms"] = num_or_null(v.ms);
      j[c.is_flops ? "gflops" : "gbps"] = num_or_null(std::isfinite(v.ms) ? rate(c, v.ms) : NAN);
      j["pct_peak"] = num_or_null(pct_peak(c, v.ms, peak));
      j["peer"] = p ? Json(p->name) : Json(nullptr);
      j["peer_ms"] = num_or_null(p ? p->ms : NAN);
      j["ratio"] = num_or_null(p ? p->ms / v.ms : NAN);
      std::string note = v.note;
      if (p && !p->note.empty()) note += (note.empty() ? "" : "; ") + p->note;
      if (!p && !c.peer_note.empty()) note += (note.empty() ? "" : "; ") + c.peer_note;
      if (p && !p->env.empty()) j["peer_env"] = p->env;
      if (!note.empty()) j["note"] = note;
      rows.push_back(j);
    };
    if (c.peers.empty()) row(nullptr);
    for (const Entry& p : c.peers) row(&p);
  }
  return rows;
}

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A plain text table: left-aligned text columns, right-aligned numbers.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print() const {
    std::vector<size_t> w(rows_[0].size(), 0);
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        const bool numeric = !r[i].empty() && (std::isdigit(static_cast<unsigned char>(r[i][0])) || r[i] == "-");
        const std::string pad(w[i] - r[i].size(), ' ');
        line += (i ? "  " : "") + (numeric ? pad + r[i] : r[i] + pad);
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Text: per case, our versions then the peers; a peer's ratio is against our fastest version.
void print_cases(const std::vector<CaseResult>& cases, const bench::Peak* peak) {
  if (cases.empty()) return;
  const bool flops = cases[0].is_flops;
  Table t({"op", "shape", "thr", "version", "ms", flops ? "GFLOP/s" : "GB/s", "%peak", "ratio", "note"});
  for (const CaseResult& c : cases) {
    double best = NAN;
    for (const Entry& v : c.ours)
      if (v.name != "ref" && std::isfinite(v.ms) && !(v.ms >= best)) best = v.ms;
    bool first = true;
    auto add = [&](const Entry& e, bool peer) {
      const bool timed = std::isfinite(e.ms);
      std::string note = e.note;
      if (!e.env.empty()) note = e.env + (note.empty() ? "" : "; " + note);
      t.add({first ? c.op : "", first ? c.shape : "", first ? std::to_string(c.threads) : "", e.name, fmt("%.3f", e.ms),
             timed ? fmt("%.1f", rate(c, e.ms)) : "-", fmt("%.1f", pct_peak(c, e.ms, peak)),
             peer ? fmt("%.2f", e.ms / best) : "", note});
      first = false;
    };
    for (const Entry& v : c.ours) add(v, false);
    for (const Entry& p : c.peers) add(p, true);
  }
  t.print();
  std::printf("ratio = peer ms / ms of tessel's fastest version (above 1: tessel is faster)\n");
}

void print_header(const char* what, const Options& o, const bench::Peak* peak) {
  const Protocol p = protocol(o);
  std::printf("tessel bench %s — %s, %d threads; median of %d samples of >= %.0f ms%s, interleaved\n", what,
              cpu_features().model.c_str(), get_num_threads(), p.samples, p.min_sample_ms,
              p.cpu_clock ? " of CPU time" : "");
  if (peak)
    std::printf("%s\n\n", bench::describe(*peak).c_str());
  else
    std::printf("(--quick: no peak probe, %%peak not shown)\n\n");
}

// ---------------------------------------------------------------- gemm

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  int threads;
};

std::string gemm_shape(const GemmCase& g) {
  return std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + "_" + (g.ta ? "t" : "n") +
         (g.tb ? "t" : "n");
}

std::vector<GemmCase> gemm_cases(bool quick, int threads, const std::string& set) {
  if (quick) return {{64, 64, 64, false, false, threads}, {33, 17, 65, true, false, threads}};
  if (set == "transformer") {  // a layer y = x W, x: [4096, k], W: [k, n], and its backward
    std::vector<GemmCase> cases;
    for (int64_t k : {256, 512, 1024})
      for (int64_t n : {256, 512, 1024}) {
        cases.push_back({4096, n, k, false, false, threads});  // forward  x W
        cases.push_back({4096, k, n, false, true, threads});   // dx = dy W^T
        cases.push_back({k, n, 4096, true, false, threads});   // dW = x^T dy
      }
    return cases;
  }
  if (set == "skinny") {  // M or N in 1..64: a batch of one, a few heads, a narrow output layer
    std::vector<GemmCase> cases;
    for (int64_t s : {1, 8, 32, 64}) {
      cases.push_back({s, 1024, 1024, false, false, threads});
      cases.push_back({s, 1024, 1024, false, true, threads});
      cases.push_back({1024, s, 1024, false, false, threads});
      cases.push_back({1024, s, 1024, true, false, threads});
    }
    return cases;
  }
  std::vector<GemmCase> cases = {
      {256, 256, 256, false, false, threads},
      {512, 512, 512, false, false, threads},
      {1024, 1024, 1024, false, false, threads},
      {2048, 2048, 2048, false, false, threads},
      // a transformer layer, M = tokens: forward X W, dX = dY W^T, dW = X^T dY
      {4096, 1024, 1024, false, false, threads},
      {4096, 1024, 1024, false, true, threads},
      {1024, 1024, 4096, true, false, threads},
      {4096, 256, 1024, false, false, threads},
  };
  if (threads > 1) cases.push_back({1024, 1024, 1024, false, false, 1});
  return cases;
}

// Operands stored row-major as BLAS sees them: A is [m, k], or [k, m] when transposed.
struct GemmOperands {
  Tensor a, b, c;     // storage
  Tensor a_op, b_op;  // op(A) [m, k], op(B) [k, n]: views with swapped strides when transposed
};

GemmOperands gemm_operands(const GemmCase& g, bool small_integers) {
  auto mat = [&](int64_t r, int64_t c) {
    if (!small_integers) return randn({r, c});
    // |entries| <= 4, so every partial sum is an integer below 2^24: exact in f32 in any order.
    Tensor t = empty({r, c});
    copy_into(t, randint(-4, 5, {r, c}));
    return t;
  };
  GemmOperands o;
  o.a = g.ta ? mat(g.k, g.m) : mat(g.m, g.k);
  o.b = g.tb ? mat(g.n, g.k) : mat(g.k, g.n);
  o.c = full({g.m, g.n}, NAN);  // poisoned: an unwritten element shows
  o.a_op = g.ta ? transpose(o.a, 0, 1) : o.a;
  o.b_op = g.tb ? transpose(o.b, 0, 1) : o.b;
  return o;
}

kernels::MatmulParams tessel_params(const GemmOperands& o) {
  kernels::MatmulParams p;
  p.a = o.a_op.buf();
  p.b = o.b_op.buf();
  p.c = o.c.buf();
  return p;
}

SgemmArgs peer_args(const GemmCase& g, const GemmOperands& o) {
  SgemmArgs s;
  s.trans_a = g.ta;
  s.trans_b = g.tb;
  s.m = g.m;
  s.n = g.n;
  s.k = g.k;
  s.a = o.a.data_ptr<float>();
  s.lda = o.a.size(1);
  s.b = o.b.data_ptr<float>();
  s.ldb = o.b.size(1);
  s.c = o.c.data_ptr<float>();
  s.ldc = g.n;
  return s;
}

// "" if `run` (writing o.c) reproduces ref exactly on small-integer operands, else what differs.
// The check runs at the case's shape when ref is quick enough there, else at a smaller odd
// shape with the same transposes.
template <class Run>
std::string check_gemm(const GemmCase& g, Run&& run) {
  GemmCase s = g;
  if (static_cast<double>(g.m) * g.n * g.k > 512.0 * 512 * 512) {
    s.m = std::min<int64_t>(g.m, 197);
    s.n = std::min<int64_t>(g.n, 131);
    s.k = std::min<int64_t>(g.k, 263);
  }
  GemmOperands o = gemm_operands(s, true);
  Tensor want = full({s.m, s.n}, NAN);
  kernels::MatmulParams rp = tessel_params(o);
  rp.c = want.buf();
  kernels::matmul_family().run_version("ref", rp);
  try {
    run(s, o);
  } catch (const std::exception& e) {
    return std::string("failed: ") + e.what();
  }
  const float* got = o.c.data_ptr<float>();
  const float* ref = want.data_ptr<float>();
  for (int64_t i = 0; i < s.m * s.n; ++i)
    if (!(got[i] == ref[i])) {
      std::ostringstream msg;
      msg << "differs from ref at " << gemm_shape(s) << " [" << i / s.n << ", " << i % s.n << "]: " << got[i] << " vs "
          << ref[i] << "; not timed";
      return msg.str();
    }
  return "";
}

CaseResult run_gemm_case(const GemmCase& g, const Options& opt, const std::vector<GemmPeer>& peers) {
  CaseResult r;
  r.family = "gemm";
  r.op = "f32";
  r.shape = gemm_shape(g);
  r.threads = g.threads;
  r.work = 2.0 * g.m * g.n * g.k;
  r.is_flops = true;

  const int saved_threads = get_num_threads();
  set_num_threads(g.threads);
  for (const GemmPeer& p : peers) p.set_threads(g.threads);

  GemmOperands data = gemm_operands(g, false);
  std::vector<Contender> contenders;
  std::vector<Entry*> slots;
  // Entries are appended first and pointed into afterwards, so the vectors never reallocate
  // under the pointers.
  const auto& fam = kernels::matmul_family();
  const bool ref_allowed = opt.quick || static_cast<double>(g.m) * g.n * g.k <= 256.0 * 256 * 256;
  for (const std::string& v : fam.versions(DeviceType::cpu)) {
    if (!selected(opt.variants, v) || (v == "ref" && !ref_allowed && opt.variants.empty())) continue;
    Entry e{v};
    const kernels::MatmulParams p = tessel_params(data);
    if (!fam.accepts(v, p)) {
      // A version that declines (an ISA this CPU lacks; cpu_amx, which takes only bf16) is
      // listed only when asked for by name.
      if (opt.variants.empty()) continue;
      e.note = "does not accept this shape";
    } else if (v != "ref") {
      e.note = check_gemm(g, [&](const GemmCase&, const GemmOperands& o) { fam.run_version(v, tessel_params(o)); });
    }
    r.ours.push_back(e);
  }
  for (const GemmPeer& p : peers) {
    Entry e{p.name};
    e.note = check_gemm(g, [&](const GemmCase& s, const GemmOperands& o) { p.sgemm(peer_args(s, o)); });
    r.peers.push_back(e);
  }
  for (Entry& e : r.ours) {
    if (!e.note.empty()) continue;
    const kernels::MatmulParams p = tessel_params(data);
    contenders.push_back({e.name, [&fam, p, v = e.name] { fam.run_version(v, p); }, {}});
    slots.push_back(&e);
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    Entry& e = r.peers[i];
    if (!e.note.empty()) continue;
    // Each peer writes its own C, so no contender reads another's output.
    auto out = std::make_shared<Tensor>(empty({g.m, g.n}));
    SgemmArgs s = peer_args(g, data);
    s.c = out->data_ptr<float>();
    contenders.push_back({e.name, [fn = peers[i].sgemm, s, out] { fn(s); }, {}});
    slots.push_back(&e);
  }
  const std::vector<Timing> t = time_interleaved(contenders, protocol(opt));
  for (size_t i = 0; i < slots.size(); ++i) slots[i]->ms = t[i].median_ms;

  set_num_threads(saved_threads);
  for (const GemmPeer& p : peers) p.set_threads(saved_threads);
  return r;
}

// OpenBLAS as it runs with its AVX-512 kernel: this program again, in a child process with
// OPENBLAS_CORETYPE=SkylakeX, timing OpenBLAS next to our fastest version. Its rows come back
// as JSON; their ratios are against tessel timed in that child.
std::vector<CaseResult> gemm_openblas_skylakex(const Options& opt) {
  std::vector<CaseResult> out;
  const auto versions = kernels::matmul_family().versions(DeviceType::cpu);
  std::string best;  // the highest-priority CPU version that is not ref and takes an f32 GEMM
  const GemmOperands probe = gemm_operands({2, 2, 2, false, false, 1}, true);
  for (const std::string& v : versions)
    if (v != "ref" && selected(opt.variants, v) && kernels::matmul_family().accepts(v, tessel_params(probe))) {
      best = v;
      break;
    }
  if (best.empty()) return out;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return out;
  exe[n] = '\0';
  std::vector<std::string> argv = {exe,      "--threads", std::to_string(get_num_threads()),
                                   "bench",  "gemm",      "--json",
                                   "--peer", "openblas",  "--variant",
                                   best,     "--set",     opt.gemm_set};
  if (opt.quick) argv.push_back("--quick");
  if (opt.cpu_clock) argv.push_back("--cpu-clock");
  if (opt.samples > 0) argv.insert(argv.end(), {"--samples", std::to_string(opt.samples)});
  if (opt.min_sample_ms > 0) argv.insert(argv.end(), {"--min-sample-ms", std::to_string(opt.min_sample_ms)});
  const std::string env = "OPENBLAS_CORETYPE=SkylakeX";
  std::string error;
  std::optional<std::string> text = run_and_capture(argv, {env}, error);
  if (!text) {
    std::fprintf(stderr, "tessel bench gemm: the %s run failed: %s\n", env.c_str(), error.c_str());
    return out;
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j["peer"].is_null()) continue;
    CaseResult c;
    c.family = "gemm";
    c.op = j["op"].get<std::string>();
    c.shape = j["shape"].get<std::string>();
    c.threads = j["threads"].get<int>();
    c.is_flops = true;
    const double ms = j["ms"].is_number() ? j["ms"].get<double>() : NAN;
    c.work = j["gflops"].is_number() ? j["gflops"].get<double>() * 1e9 * ms * 1e-3 : 0;
    Entry ours{j["variant"].get<std::string>(), ms, j.value("note", "")};
    Entry peer{j["peer"].get<std::string>(), j["peer_ms"].is_number() ? j["peer_ms"].get<double>() : NAN, "", env};
    c.ours.push_back(ours);
    c.peers.push_back(peer);
    out.push_back(c);
  }
  return out;
}

int bench_gemm(const Options& opt) {
  const bench::Peak* peak = peak_for(opt);
  std::vector<GemmPeer> peers;
  for (const GemmPeer& p : gemm_peers())
    if (selected(opt.peers, p.key)) peers.push_back(p);
  std::string missing;
  for (const std::string& m : missing_gemm_peers()) {
    std::fprintf(stderr, "tessel bench gemm: %s\n", m.c_str());
    missing += (missing.empty() ? "" : "; ") + m;
  }
  if (!opt.json) print_header("gemm", opt, peak);

  std::vector<CaseResult> cases;
  for (const GemmCase& g : gemm_cases(opt.quick, get_num_threads(), opt.gemm_set)) {
    CaseResult r = run_gemm_case(g, opt, peers);
    if (peers.empty()) r.peer_note = missing.empty() ? "no peer selected" : missing;
    if (opt.json)
      for (const Json& j : json_rows(r, peak)) std::cout << j.dump() << "\n" << std::flush;
    cases.push_back(std::move(r));
  }
  if (!opt.json) print_cases(cases, peak);

  // The same OpenBLAS again with its AVX-512 kernel, unless this is that run (or the user chose
  // a core type) or the CPU lacks AVX-512.
  const bool have_openblas = [&] {
    for (const GemmPeer& p : peers)
      if (p.key == "openblas") return true;
    return false;
  }();
  if (have_openblas && !std::getenv("OPENBLAS_CORETYPE") && cpu_features().avx512f) {
    std::vector<CaseResult> sk = gemm_openblas_skylakex(opt);
    if (opt.json) {
      for (const CaseResult& c : sk)
        for (const Json& j : json_rows(c, peak)) std::cout << j.dump() << "\n";
    } else if (!sk.empty()) {
      std::printf("\nOpenBLAS with OPENBLAS_CORETYPE=SkylakeX (a separate process; ratios against tessel there)\n");
      print_cases(sk, peak);
    }
  }
  return 0;
}

// ---------------------------------------------------------------- ops

struct OpCase {
  std::string family, op, shape;
  double bytes;  // each operand read or written once (the bench/*_bench.cpp counts)
  bool with_ref;
  std::vector<std::string> versions;
  std::function<std::function<void()>(const std::string& version)> make;
};

template <class Params>
std::function<void()> runner(const kernels::Family<Params>& fam, const std::string& v, Params p,
                             std::vector<Tensor> keep) {
  fam.run_version(v, p);  // fails here, not inside the timing loop, if the version declines
  return [&fam, v, p, keep = std::move(keep)] { fam.run_version(v, p); };
}

std::string dims(int64_t r, int64_t c) { return std::to_string(r) + "x" + std::to_string(c); }

OpCase elementwise_case(kernels::EwOp op, int64_t n, bool with_ref) {
  const int arity = kernels::ew_arity(op);
  auto& fam = kernels::elementwise_family();
  return {"elementwise",
          kernels::ew_name(op),
          std::to_string(n),
          4.0 * n * (arity + 1),
          with_ref,
          fam.versions(DeviceType::cpu),
          [&fam, op, n, arity](const std::string& v) {
            Tensor a = randn({n}), b = randn({n}), out = empty({n});
            kernels::ElementwiseParams p;
            p.op = op;
            p.out = out.buf();
            p.in[0] = a.buf();
            if (arity > 1) p.in[1] = b.buf();
            return runner(fam, v, p, {a, b, out});
          }};
}

OpCase reduce_case(int64_t rows, int64_t cols, bool with_ref) {
  auto& fam = kernels::reduce_family();
  return {"reduce",
          "sum_rows",
          dims(rows, cols),
          4.0 * rows * cols,
          with_ref,
          fam.versions(DeviceType::cpu),
          [&fam, rows, cols](const std::string& v) {
            Tensor x = randn({rows, cols}), out = empty({rows});
            kernels::ReduceParams p;
            p.op = kernels::ReduceOp::sum;
            p.in = x.buf();
            p.reduced = 1;
            p.out = out.buf();
            return runner(fam, v, p, {x, out});
          }};
}

OpCase softmax_case(bool backward, int64_t rows, int64_t cols, bool with_ref) {
  auto& fam = kernels::softmax_family();
  return {"softmax",
          backward ? "softmax_backward" : "softmax",
          dims(rows, cols),
          4.0 * rows * cols * (backward ? 3 : 2),
          with_ref,
          fam.versions(DeviceType::cpu),
          [&fam, backward, rows, cols](const std::string& v) {
            Tensor x = randn({rows, cols}), dy = randn({rows, cols}), out = empty({rows, cols});
            kernels::SoftmaxParams p;
            p.op = kernels::SoftmaxOp::softmax;
            p.in = x.buf();
            p.out = out.buf();
            if (backward) {  // backward reads a real softmax output
              Tensor y = empty({rows, cols});
              p.out = y.buf();
              fam.run(DeviceType::cpu, p);
              x = y;
              p.op = kernels::SoftmaxOp::softmax_backward;
              p.in = x.buf();
              p.grad = dy.buf();
              p.out = out.buf();
            }
            return runner(fam, v, p, {x, dy, out});
          }};
}

OpCase norm_case(bool backward, int64_t R, int64_t C, bool with_ref) {
  auto& fam = kernels::norm_family();
  const double rc = static_cast<double>(R) * C;
  return {"norm",
          backward ? "layer_norm_backward" : "layer_norm",
          dims(R, C),
          4.0 * (backward ? 3 * rc + 3 * C + 2 * R : 2 * rc + 2 * C + 2 * R),
          with_ref,
          fam.versions(DeviceType::cpu),
          [&fam, backward, R, C](const std::string& v) {
            Tensor x = randn({R, C}), w = randn({C}), b = randn({C}), y = empty({R, C}), mean = empty({R}),
                   rstd = empty({R}), dy = randn({R, C}), dx = empty({R, C}), dw = empty({C}), db = empty({C});
            kernels::NormParams p;
            p.op = kernels::NormOp::layer_norm;
            p.rows = R;
            p.cols = C;
            p.eps = 1e-5;
            p.x = x.buf();
            p.weight = w.buf();
            p.bias = b.buf();
            p.mean = mean.buf();
            p.rstd = rstd.buf();
            p.y = y.buf();
            if (backward) {
              fam.run(DeviceType::cpu, p);  // the statistics backward reads
              p.op = kernels::NormOp::layer_norm_backward;
              p.bias = Buf{};
              p.y = Buf{};
              p.dy = dy.buf();
              p.dx = dx.buf();
              p.dweight = dw.buf();
              p.dbias = db.buf();
            }
            return runner(fam, v, p, {x, w, b, y, mean, rstd, dy, dx, dw, db});
          }};
}

OpCase loss_case(bool backward, int64_t N, int64_t C, bool with_ref) {
  auto& fam = kernels::loss_family();
  const double nc = static_cast<double>(N) * C;
  return {"loss",
          backward ? "cross_entropy_backward" : "cross_entropy",
          dims(N, C),
          backward ? 8 * nc + 16.0 * N : 4 * nc + 16.0 * N,
          with_ref,
          fam.versions(DeviceType::cpu),
          [&fam, backward, N, C](const std::string& v) {
            Tensor x = randn({N, C}), target = randint(0, C, {N}), loss = empty({N}), lse = empty({N});
            Tensor grad_row = full({N}, 1.0 / static_cast<double>(N)), dx = empty({N, C});
            kernels::LossParams p;
            p.op = kernels::LossOp::cross_entropy;
            p.input = x.buf();
            p.target = target.buf();
            p.loss = loss.buf();
            p.lse = lse.buf();
            if (backward) {
              fam.run(DeviceType::cpu, p);  // the lse backward reads
              p.op = kernels::LossOp::cross_entropy_backward;
              p.loss = Buf{};
              p.grad_row = grad_row.buf();
              p.dinput = dx.buf();
            }
            return runner(fam, v, p, {x, target, loss, lse, grad_row, dx});
          }};
}

// Each family at a size where ref also runs (it is the oracle, and slow) and, in the full run,
// at a size beyond the caches where only the fast versions run.
std::vector<OpCase> op_cases(bool quick) {
  using kernels::EwOp;
  std::vector<OpCase> c;
  const int64_t big = 1 << 24, small = quick ? 1 << 12 : 1 << 20;
  for (EwOp op : {EwOp::add, EwOp::relu, EwOp::gelu_tanh}) {
    c.push_back(elementwise_case(op, small, true));
    if (!quick) c.push_back(elementwise_case(op, big, false));
  }
  c.push_back(reduce_case(quick ? 64 : 1024, quick ? 128 : 1024, true));
  if (!quick) c.push_back(reduce_case(4096, 4096, false));
  for (bool bwd : {false, true}) {
    c.push_back(softmax_case(bwd, quick ? 64 : 512, quick ? 128 : 4096, true));
    if (!quick) c.push_back(softmax_case(bwd, 4096, 4096, false));
  }
  for (bool bwd : {false, true}) {
    c.push_back(norm_case(bwd, quick ? 64 : 1024, quick ? 128 : 1024, true));
    if (!quick) c.push_back(norm_case(bwd, 4096, 1024, false));
  }
  for (bool bwd : {false, true}) {
    c.push_back(loss_case(bwd, quick ? 64 : 512, quick ? 128 : 1024, true));
    if (!quick) c.push_back(loss_case(bwd, 4096, 1024, false));
  }
  return c;
}

int bench_ops(const Options& opt) {
  const bench::Peak* peak = peak_for(opt);
  if (!opt.json) print_header("ops", opt, peak);
  std::vector<CaseResult> cases;
  for (const OpCase& oc : op_cases(opt.quick)) {
    if (!selected(opt.families, oc.family)) continue;
    CaseResult r;
    r.family = oc.family;
    r.op = oc.op;
    r.shape = oc.shape;
    r.threads = get_num_threads();
    r.work = oc.bytes;
    r.is_flops = false;
    r.peer_note = "no in-process peer for this family (tessel bench peers compares with PyTorch)";
    std::vector<Contender> contenders;
    for (const std::string& v : oc.versions) {
      if (!selected(opt.variants, v) || (v == "ref" && !oc.with_ref)) continue;
      Entry e{v};
      try {
        contenders.push_back({v, oc.make(v), {}});
      } catch (const std::exception& ex) {
        e.note = std::string("not timed: ") + ex.what();
      }
      r.ours.push_back(e);
    }
    const std::vector<Timing> t = time_interleaved(contenders, protocol(opt));
    size_t k = 0;
    for (Entry& e : r.ours)
      if (e.note.empty()) e.ms = t[k++].median_ms;
    if (opt.json)
      for (const Json& j : json_rows(r, peak)) std::cout << j.dump() << "\n" << std::flush;
    cases.push_back(std::move(r));
  }
  if (!opt.json) {
    print_cases(cases, peak);
    std::printf("no in-process peers for these families; `tessel bench peers` compares with PyTorch\n");
  }
  return 0;
}

// ---------------------------------------------------------------- peers

std::string peers_dir() {
  if (const char* d = std::getenv("TESSEL_PEERS_DIR")) return d;
  return std::string(TESSEL_SOURCE_DIR) + "/bench/peers";
}

std::string venv_dir() {
  if (const char* d = std::getenv("TESSEL_PEERS_VENV")) return d;
  return peers_dir() + "/.venv";
}

// Starts the PyTorch peer, or explains on stderr why not and how to fix it.
std::unique_ptr<PeerProcess> start_pytorch(const std::string& device, std::string& why) {
  const std::string venv = venv_dir(), python = venv + "/bin/python", script = peers_dir() + "/pytorch_peer.py";
  if (access(python.c_str(), X_OK) != 0) {
    why = "no PyTorch virtual environment at " + venv;
    std::fprintf(stderr,
                 "tessel bench peers: %s.\n"
                 "  Create it with:   %s/setup\n"
                 "  (or elsewhere:    %s/setup DIR   and run with TESSEL_PEERS_VENV=DIR)\n"
                 "  Timing tessel alone for now.\n",
                 why.c_str(), peers_dir().c_str(), peers_dir().c_str());
    return nullptr;
  }
  if (access(script.c_str(), R_OK) != 0) {
    why = "no " + script + " (set TESSEL_PEERS_DIR to the source tree's bench/peers)";
    std::fprintf(stderr, "tessel bench peers: %s; timing tessel alone.\n", why.c_str());
    return nullptr;
  }
  auto proc = std::make_unique<PeerProcess>(std::vector<std::string>{
      python, script, "--serve", "--threads", std::to_string(get_num_threads()), "--device", device});
  if (!proc->ok() || !proc->hello().contains("peer")) {
    why = "the PyTorch peer did not start: " + (proc->ok() ? proc->hello().dump() : proc->error());
    std::fprintf(stderr, "tessel bench peers: %s; timing tessel alone.\n", why.c_str());
    return nullptr;
  }
  return proc;
}

int bench_peers(const Options& opt) {
  // PyTorch runs in a child process whose samples are wall-clock times.
  check(!opt.cpu_clock, "tessel bench peers", "--cpu-clock is for gemm and ops (the peer is another process)");
  const Device dev = opt.device == "cuda" ? Device::cuda() : Device::cpu();
  if (dev.is_cuda())
    check(cuda_available(), "tessel bench peers", "--device cuda: ",
          cuda_built() ? "no CUDA device is visible to this process"
                       : "this build has no CUDA backend (configure with -DTESSEL_CUDA=ON)");
  // On a GPU the CPU's peaks mean nothing: no %peak there (and no probe run for it).
  const bench::Peak* peak = dev.is_cpu() ? peak_for(opt) : nullptr;
  std::string why;
  std::unique_ptr<PeerProcess> torch = start_pytorch(opt.device, why);
  const std::string peer_name = torch ? torch->hello()["peer"].get<std::string>() : "";
  if (!opt.json) print_header("peers", opt, peak);
  Table t({"workload", "shape", "thr", "tessel ms", "%peak", "peer", "peer ms", "ratio"});
  for (const Workload& w : workloads()) {
    if (!selected(opt.names, w.name)) continue;
    std::vector<Contender> contenders = {{"tessel", w.make(dev), {}}};
    std::string error;
    if (torch)
      contenders.push_back({peer_name, {}, [&](double min_ms) {
                              if (!error.empty()) return double(NAN);
                              auto r = torch->request({{"workload", w.name}, {"min_sample_ms", min_ms}});
                              if (!r || !r->contains("ms")) {
                                error = r ? r->value("error", r->dump()) : torch->error();
                                return double(NAN);
                              }
                              return (*r)["ms"].get<double>();
                            }});
    const std::vector<Timing> tm = time_interleaved(contenders, protocol(opt));
    const double ms = tm[0].median_ms;
    const double peer_ms = torch && error.empty() ? tm[1].median_ms : NAN;
    const double pct = !peak         ? NAN
                       : w.flops > 0 ? 100.0 * w.flops / (ms * 1e-3) / 1e9 / bench::fma_peak_gflops(get_num_threads())
                                     : 100.0 * w.bytes / (ms * 1e-3) / 1e9 / peak->bandwidth_gbs;
    std::string note = torch ? error : why;
    if (!error.empty())
      std::fprintf(stderr, "tessel bench peers: %s: the peer failed: %s\n", w.name.c_str(), error.c_str());
    if (opt.json) {
      Json j;
      j["workload"] = w.name;
      j["shape"] = w.shape;
      j["device"] = dev.is_cpu() ? "cpu" : cuda_device_name(dev.index);
      j["threads"] = get_num_threads();
      j["tessel_ms"] = num_or_null(ms);
      j["peer"] = torch ? Json(peer_name) : Json(nullptr);
      j["peer_ms"] = num_or_null(peer_ms);
      j["ratio"] = num_or_null(peer_ms / ms);
      j["pct_peak"] = num_or_null(pct);
      if (!note.empty()) j["note"] = note;
      std::cout << j.dump() << "\n" << std::flush;
    } else {
      t.add({w.name, w.shape, std::to_string(get_num_threads()), fmt("%.3f", ms), fmt("%.1f", pct),
             torch ? peer_name : "-", fmt("%.3f", peer_ms), fmt("%.2f", peer_ms / ms)});
    }
  }
  if (!opt.json) {
    t.print();
    if (dev.is_cpu())
      std::printf("ratio = peer ms / tessel ms (above 1: tessel is faster); both sides on %d threads\n",
                  get_num_threads());
    else
      std::printf("ratio = peer ms / tessel ms (above 1: tessel is faster); both sides on %s\n",
                  cuda_device_name(dev.index).c_str());
  }
  return 0;
}

// ---------------------------------------------------------------- the command

void add_common(CLI::App* c, Options& o) {
  c->add_flag("--json", o.json, "One JSON object per line on stdout (notes go to stderr)");
  c->add_flag("--quick", o.quick, "Tiny shapes, 3 samples of >= 1 ms, no peak probe (for tests)");
  c->add_option("--samples", o.samples, "Samples per contender (default 10)")->check(CLI::PositiveNumber);
  c->add_option("--min-sample-ms", o.min_sample_ms, "Least length of one sample in ms (default 20)")
      ->check(CLI::PositiveNumber);
  c->add_flag("--cpu-clock", o.cpu_clock,
              "Time by this process's CPU time, not the wall clock: one thread only; on a shared machine the "
              "time other processes held the core is left out (%peak still uses the wall-clock probe)");
}

Command bench{
    "bench", "Time kernel versions and peer libraries side by side (gemm, ops, peers)", [](CLI::App& cmd) -> Action {
      auto opt = std::make_shared<Options>();
      cmd.require_subcommand(1);
      cmd.footer(
          "\nEvery number: untimed warm-up, then at least 10 samples of >= 20 ms each, median; the\n"
          "contenders' samples interleaved. ratio = peer ms / tessel ms (above 1: tessel is faster).\n"
          "See docs/bench.md.");
      CLI::App* gemm = cmd.add_subcommand("gemm", "f32 GEMM: every matmul version vs oneDNN and OpenBLAS");
      add_common(gemm, *opt);
      gemm->add_option("--peer", opt->peers, "Only these peers: onednn, openblas (repeatable)")
          ->check(CLI::IsMember({"onednn", "openblas"}));
      gemm->add_option("--variant", opt->variants, "Only these tessel versions (repeatable)");
      gemm->add_option("--set", opt->gemm_set,
                       "Shapes: default (squares and a few layer shapes), transformer (M = 4096, K, N in "
                       "256..1024, NN/NT/TN), skinny (M or N in 1..64)")
          ->check(CLI::IsMember({"default", "transformer", "skinny"}));
      CLI::App* ops = cmd.add_subcommand("ops", "Memory-bound families, forward and backward, in GB/s");
      add_common(ops, *opt);
      ops->add_option("--family", opt->families, "Only these families: elementwise, reduce, softmax, norm, loss")
          ->check(CLI::IsMember({"elementwise", "reduce", "softmax", "norm", "loss"}));
      ops->add_option("--variant", opt->variants, "Only these tessel versions (repeatable)");
      CLI::App* peers = cmd.add_subcommand(
          "peers", "Registered workloads in tessel and in PyTorch (bench/peers/setup creates its venv)");
      add_common(peers, *opt);
      peers->add_option("--workload", opt->names, "Only these workloads (repeatable)");
      peers->add_option("--device", opt->device, "Where both sides run: cpu, or cuda (a CUDA build and a GPU)")
          ->check(CLI::IsMember({"cpu", "cuda"}))
          ->capture_default_str();
      peers->footer(
          "\nENVIRONMENT\n"
          "  TESSEL_PEERS_VENV=DIR   the PyTorch virtual environment (default: bench/peers/.venv of the\n"
          "                          source tree; bench/peers/setup [DIR] creates it)\n"
          "  TESSEL_PEERS_DIR=DIR    where pytorch_peer.py lives (default: the source tree's bench/peers)");
      return [opt, gemm, ops, peers] {
        if (gemm->parsed()) return bench_gemm(*opt);
        if (ops->parsed()) return bench_ops(*opt);
        if (peers->parsed()) return bench_peers(*opt);
        return 2;
      };
    }};

}  // namespace
}  // namespace tessel::cli
