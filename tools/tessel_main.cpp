// tools/tessel_main.cpp — the `tessel` command-line program: global options and dispatch.
//
// The subcommands (info, and later train, bench, gradcheck, ...) live one per file in
// tools/cmd_<name>.cpp and register themselves (tools/command.h); this file only parses the
// options every subcommand shares, applies them, and runs the chosen subcommand.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "core/error.h"
#include "core/parallel.h"
#include "tools/command.h"

namespace tessel::cli {

Command::Command(std::string name, std::string description, Setup setup) {
  commands().push_back({std::move(name), std::move(description), std::move(setup)});
}

std::vector<CommandSpec>& commands() {
  static std::vector<CommandSpec> all;
  return all;
}

}  // namespace tessel::cli

namespace {

constexpr const char* kDescription =
    "tessel — a C++20 tensor library with reverse-mode autograd, hand-written CPU kernels and\n"
    "(optionally) CUDA kernels. This program inspects the build, trains example models and\n"
    "benchmarks and checks kernels.\n";

constexpr const char* kFooter =
    "\nENVIRONMENT\n"
    "  TESSEL_NUM_THREADS=N           threads for CPU kernels (default: every core this process\n"
    "                                 may run on); --threads overrides it\n"
    "  TESSEL_KERNEL_<FAMILY>=NAME    force one version of a kernel family, e.g.\n"
    "                                 TESSEL_KERNEL_MATMUL=ref; a version that cannot take the\n"
    "                                 arguments falls back to the next one\n"
    "  TESSEL_CPU_CACHE_LIMIT_MB=N    most freed CPU memory kept for reuse (default 8192)\n"
    "\nEXAMPLES\n"
    "  tessel info                    the build, the CPU's features, threads, memory\n"
    "  tessel info --json             the same as one JSON object\n"
    "  tessel --threads 4 info        run with 4 CPU threads\n"
    "\nRun `tessel <command> --help` for a command's own options.\n";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "tessel"};
  app.footer(kFooter);
  // At most one subcommand; an unknown word is reported as such ("not expected: train-mlp")
  // rather than as a missing subcommand, and no subcommand at all prints the help.
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options may also follow the subcommand

  int threads = 0;
  app.add_option("--threads", threads, "Threads for CPU kernels (overrides TESSEL_NUM_THREADS; default: all cores)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");

  auto& specs = tessel::cli::commands();
  std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<CLI::App*, tessel::cli::Action> actions;
  for (const auto& spec : specs) {
    CLI::App* cmd = app.add_subcommand(spec.name, spec.description);
    actions[cmd] = spec.setup(*cmd);
  }

  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) tessel::set_num_threads(threads);
    for (auto& [cmd, action] : actions)
      if (cmd->parsed()) return action();
    std::fputs(app.help().c_str(), stderr);
    return 2;
  } catch (const tessel::Error& e) {
    std::fprintf(stderr, "tessel: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessel: unexpected error: %s\n", e.what());
    return 1;
  }
}
