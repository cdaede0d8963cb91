// tools/tessel_main.cpp — the `tessel` command-line program (placeholder until filled).
#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"tessel"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
