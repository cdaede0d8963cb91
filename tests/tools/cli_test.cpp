// tests/tools/cli_test.cpp — runs the built `tessel` program and checks what it prints.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "tests/tools/run_tessel.h"

#ifdef TESSEL_CLI_PATH

namespace {

using tessel::testing::Run;

Run run_cli(const std::string& args, const std::string& env = "") { return tessel::testing::run_tessel(args, env); }

nlohmann::json info_json(const std::string& args, const std::string& env = "") {
  Run r = run_cli(args, env);
  INFO("output: ", r.out);
  REQUIRE(r.status == 0);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

}  // namespace

TEST_SUITE("tools") {
  TEST_CASE("cli: info --json is one object with the documented keys") {
    nlohmann::json j = info_json("info --json", "env -u TESSEL_NUM_THREADS");
    REQUIRE(j.is_object());
    for (const char* key : {"version", "build", "cuda", "cpu", "threads", "allocator"}) {
      INFO("key ", key);
      CHECK(j.contains(key));
    }
    CHECK(j["version"].get<std::string>().find('.') != std::string::npos);
    CHECK(j["build"]["compiler"].is_string());
    CHECK(j["build"]["type"].is_string());
    CHECK(j["cuda"]["built"].is_boolean());
    CHECK(j["cpu"]["model"].get<std::string>() == tessel::cpu_features().model);
    for (auto [name, on] : tessel::cpu_features().list()) {
      INFO("feature ", name);
      REQUIRE(j["cpu"]["features"].contains(name));
      CHECK(j["cpu"]["features"][name].get<bool>() == on);
    }
    CHECK(j["threads"]["hardware"].get<int>() == tessel::hardware_threads());
    CHECK(j["threads"]["current"].get<int>() == tessel::hardware_threads());
    CHECK(j["threads"]["env_TESSEL_NUM_THREADS"].is_null());
    for (const char* key : {"current_bytes", "peak_bytes", "cached_bytes", "alloc_count", "os_alloc_count"}) {
      INFO("allocator key ", key);
      CHECK(j["allocator"][key].is_number_integer());
    }
  }

  TEST_CASE("cli: thread count from TESSEL_NUM_THREADS and --threads") {
    nlohmann::json env = info_json("info --json", "TESSEL_NUM_THREADS=3");
    CHECK(env["threads"]["current"].get<int>() == 3);
    CHECK(env["threads"]["env_TESSEL_NUM_THREADS"].get<std::string>() == "3");
    // The flag wins over the environment, before or after the subcommand.
    CHECK(info_json("--threads 5 info --json", "TESSEL_NUM_THREADS=3")["threads"]["current"].get<int>() == 5);
    CHECK(info_json("info --json --threads 2")["threads"]["current"].get<int>() == 2);
  }

  TEST_CASE("cli: text output, help and bad arguments") {
    Run text = run_cli("info");
    CHECK(text.status == 0);
    CHECK(text.out.find("tessel ") == 0);
    CHECK(text.out.find(tessel::cpu_features().model) != std::string::npos);

    Run help = run_cli("--help");
    CHECK(help.status == 0);
    CHECK(help.out.find("info") != std::string::npos);
    CHECK(help.out.find("TESSEL_NUM_THREADS") != std::string::npos);

    CHECK(run_cli("").status != 0);  // a subcommand is required
    CHECK(run_cli("no-such-command").status != 0);
    CHECK(run_cli("--threads 0 info").status != 0);
    CHECK(run_cli("--threads many info").status != 0);
    CHECK(run_cli("info --no-such-flag").status != 0);
  }
}

#else
TEST_SUITE("tools") {
  TEST_CASE("cli: skipped, the tessel program was not built (TESSEL_TOOLS=OFF)") {
    MESSAGE("TESSEL_TOOLS=OFF: the command-line tests did not run");
  }
}
#endif
