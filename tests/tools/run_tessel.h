// tests/tools/run_tessel.h — runs the built `tessel` program for the CLI tests.
#pragma once
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#ifdef TESSEL_CLI_PATH

namespace tessel::testing {

struct Run {
  int status = -1;
  std::string out;  // stdout (with stderr folded in, unless split)
  std::string err;  // stderr, when split
};

// Runs `env tessel <args>` through the shell. split_stderr keeps stderr apart (through a temp
// file); otherwise it is folded into out.
inline Run run_tessel(const std::string& args, const std::string& env = "", bool split_stderr = false) {
  char err_path[] = "/tmp/tessel_cli_test_XXXXXX";
  if (split_stderr) {
    const int fd = mkstemp(err_path);
    REQUIRE(fd >= 0);
    close(fd);
  }
  const std::string cmd = env + " '" TESSEL_CLI_PATH "' " + args +
                          (split_stderr ? " 2>'" + std::string(err_path) + "'" : std::string(" 2>&1"));
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (split_stderr) {
    std::ifstream f(err_path);
    std::stringstream ss;
    ss << f.rdbuf();
    r.err = ss.str();
    std::remove(err_path);
  }
  return r;
}

}  // namespace tessel::testing

#endif
