// tools/command.h — how a subcommand of the `tessel` program plugs in.
//
// Each subcommand lives in its own file, tools/cmd_<name>.cpp, and registers itself with one
// static object:
//
//   namespace {
//   tessel::cli::Command info{"info", "Print how tessel was built and what this machine offers",
//                             [](CLI::App& cmd) { /* add options; return the action */ }};
//   }
//
// The setup function adds the subcommand's options to `cmd` and returns the action, which
// runs after parsing (and after the global options such as --threads have been applied) and
// returns the process exit code. tools/CMakeLists.txt picks up every cmd_*.cpp, so a new
// subcommand is a new file and nothing else.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace tessel::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App& cmd)>;

struct Command {
  Command(std::string name, std::string description, Setup setup);
};

struct CommandSpec {
  std::string name;
  std::string description;
  Setup setup;
};

// Every registered command, sorted by name (the order --help lists them in).
std::vector<CommandSpec>& commands();

}  // namespace tessel::cli
