// tests/tools/bench_cli_test.cpp — `tessel bench`: the JSON lines scripts rely on, and the
// peers command without a PyTorch environment. --quick keeps every run to tiny shapes and
// three short samples; these tests check the output's contract, not the speed.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "tests/tools/run_tessel.h"

#ifdef TESSEL_CLI_PATH

namespace {

using tessel::testing::Run;

// stdout and stderr kept apart: the JSON lines are on stdout alone.
Run run_bench(const std::string& args, const std::string& env = "") {
  return tessel::testing::run_tessel(args, env, /*split_stderr=*/true);
}

// Every stdout line parsed as one JSON object; fails the test on a line that is not.
std::vector<nlohmann::json> json_lines(const Run& r) {
  std::vector<nlohmann::json> rows;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    INFO("line: ", line);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    REQUIRE_FALSE(j.is_discarded());
    REQUIRE(j.is_object());
    rows.push_back(j);
  }
  return rows;
}

bool number_or_null(const nlohmann::json& j) { return j.is_number() || j.is_null(); }

}  // namespace

TEST_SUITE("tools") {
  TEST_CASE("bench ops --json --quick: one object per line with the documented keys") {
    Run r = run_bench("bench ops --json --quick");
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    REQUIRE(r.status == 0);
    const std::vector<nlohmann::json> rows = json_lines(r);
    REQUIRE(rows.size() >= 10);
    std::set<std::string> families, variants;
    for (const nlohmann::json& j : rows) {
      INFO("row: ", j.dump());
      for (const char* key :
           {"family", "variant", "shape", "threads", "ms", "gbps", "pct_peak", "peer", "peer_ms", "ratio"}) {
        INFO("key ", key);
        CHECK(j.contains(key));
      }
      CHECK_FALSE(j.contains("gflops"));
      CHECK(j["family"].is_string());
      CHECK(j["variant"].is_string());
      CHECK(j["shape"].is_string());
      CHECK(j["threads"].get<int>() >= 1);
      // Every version was timed: a positive time and a rate consistent with it.
      REQUIRE(j["ms"].is_number());
      CHECK(j["ms"].get<double>() > 0);
      CHECK(j["gbps"].get<double>() > 0);
      CHECK(number_or_null(j["pct_peak"]));
      // No in-process peer for these families: null peer, and a note saying so.
      CHECK(j["peer"].is_null());
      CHECK(j["peer_ms"].is_null());
      CHECK(j["ratio"].is_null());
      CHECK(j["note"].get<std::string>().find("peer") != std::string::npos);
      families.insert(j["family"].get<std::string>());
      variants.insert(j["family"].get<std::string>() + "/" + j["variant"].get<std::string>());
    }
    for (const char* f : {"elementwise", "reduce", "softmax", "norm", "loss"}) {
      INFO("family ", f);
      CHECK(families.count(f) == 1);
    }
    // Every registered version of a family shows up (here: elementwise).
    for (const std::string& v : tessel::kernels::elementwise_family().versions(tessel::DeviceType::cpu)) {
      INFO("version ", v);
      CHECK(variants.count("elementwise/" + v) == 1);
    }
  }

  TEST_CASE("bench gemm --json --quick: our versions, and peers checked against ref") {
    Run r = run_bench("bench gemm --json --quick", "env -u OPENBLAS_CORETYPE");
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    REQUIRE(r.status == 0);
    const std::vector<nlohmann::json> rows = json_lines(r);
    REQUIRE_FALSE(rows.empty());
    std::set<std::string> variants;
    for (const nlohmann::json& j : rows) {
      INFO("row: ", j.dump());
      for (const char* key :
           {"family", "variant", "shape", "threads", "ms", "gflops", "pct_peak", "peer", "peer_ms", "ratio"}) {
        INFO("key ", key);
        CHECK(j.contains(key));
      }
      CHECK(j["family"].get<std::string>() == "gemm");
      REQUIRE(j["ms"].is_number());
      CHECK(j["gflops"].get<double>() > 0);
      variants.insert(j["variant"].get<std::string>());
      if (j["peer"].is_null()) {
        CHECK(j["note"].is_string());  // says why there is no peer
      } else if (j["peer_ms"].is_number()) {
        // A timed peer agreed with ref; the ratio is peer_ms / ms.
        CHECK(j["ratio"].get<double>() == doctest::Approx(j["peer_ms"].get<double>() / j["ms"].get<double>()));
      } else {
        CHECK(j["note"].get<std::string>().find("not timed") != std::string::npos);
      }
    }
    // every version that takes an f32 GEMM on this CPU (cpu_amx takes only bf16)
    tessel::Tensor a = tessel::zeros({2, 2}), c = tessel::zeros({2, 2});
    tessel::kernels::MatmulParams p;
    p.a = a.buf();
    p.b = a.buf();
    p.c = c.buf();
    for (const std::string& v : tessel::kernels::matmul_family().versions(tessel::DeviceType::cpu)) {
      if (!tessel::kernels::matmul_family().accepts(v, p)) continue;
      INFO("version ", v);
      CHECK(variants.count(v) == 1);
    }
  }

  TEST_CASE("bench peers without a PyTorch venv: says how to create it, times tessel alone") {
    Run r = run_bench("bench peers --json --quick --samples 1", "TESSEL_PEERS_VENV=/nonexistent/tessel-no-venv");
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    CHECK(r.status == 0);
    CHECK(r.err.find("/nonexistent/tessel-no-venv") != std::string::npos);
    CHECK(r.err.find("bench/peers/setup") != std::string::npos);
    CHECK(r.err.find("TESSEL_PEERS_VENV") != std::string::npos);
    const std::vector<nlohmann::json> rows = json_lines(r);
    std::set<std::string> names;
    for (const nlohmann::json& j : rows) {
      INFO("row: ", j.dump());
      for (const char* key : {"workload", "shape", "tessel_ms", "peer", "peer_ms", "ratio", "pct_peak"}) {
        INFO("key ", key);
        CHECK(j.contains(key));
      }
      CHECK(j["tessel_ms"].get<double>() > 0);
      CHECK(j["peer"].is_null());
      CHECK(j["peer_ms"].is_null());
      CHECK(j["ratio"].is_null());
      names.insert(j["workload"].get<std::string>());
    }
    for (const char* w : {"gemm_1024", "softmax_4096x4096", "layernorm_fwdbwd_4096x1024", "attn_causal_fwdbwd_t512",
                          "attn_causal_fwdbwd_t128", "vit_fmnist_step", "gpt_step"}) {
      INFO("workload ", w);
      CHECK(names.count(w) == 1);
    }

    // Text mode too: the table still lists tessel's numbers.
    Run text =
        run_bench("bench peers --quick --samples 1 --workload softmax_4096x4096", "TESSEL_PEERS_VENV=/nonexistent/x");
    CHECK(text.status == 0);
    CHECK(text.out.find("softmax_4096x4096") != std::string::npos);
    CHECK(text.err.find("bench/peers/setup") != std::string::npos);
  }

  TEST_CASE("bench peers --device cuda without a GPU says why instead of timing the CPU") {
    if (tessel::cuda_available()) return;  // with a GPU, tools/gpu-check runs it for real
    Run r = run_bench("bench peers --device cuda --quick --samples 1 --workload gemm_1024",
                      "TESSEL_PEERS_VENV=/nonexistent/x");
    CHECK(r.status != 0);
    CHECK((r.out + r.err).find("--device cuda") != std::string::npos);
    CHECK(run_bench("bench peers --device tpu").status != 0);
  }

  TEST_CASE("bench: bad arguments are refused") {
    CHECK(run_bench("bench").status != 0);  // a subcommand is required
    CHECK(run_bench("bench nope").status != 0);
    CHECK(run_bench("bench gemm --peer mkl").status != 0);
    CHECK(run_bench("bench ops --family nope").status != 0);
    CHECK(run_bench("bench ops --samples 0").status != 0);
  }
}

#endif
