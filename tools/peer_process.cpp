// tools/peer_process.cpp — fork/exec with two pipes; see peer_process.h.
#include "tools/peer_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tessel::cli {

PeerProcess::PeerProcess(const std::vector<std::string>& argv) {
  int in[2], out[2];  // in: parent -> child stdin; out: child stdout -> parent
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    error_ = std::string("pipe: ") + std::strerror(errno);
    return;
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);  // nothing buffered twice
  pid_ = fork();
  if (pid_ < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    return;
  }
  if (pid_ == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);  // dup2'd descriptors do not inherit O_CLOEXEC
    execvp(args[0], args.data());
    std::fprintf(stderr, "tessel: could not start %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  to_child_ = fdopen(in[1], "w");
  from_child_ = fdopen(out[0], "r");
  // A child that dies while we write would otherwise kill us with SIGPIPE; the write then
  // fails with EPIPE and the read sees EOF, which request() reports.
  signal(SIGPIPE, SIG_IGN);
  auto hello = read_reply();
  if (!hello) {
    if (error_.empty()) error_ = "the peer process sent no hello line";
    return;
  }
  hello_ = *hello;
}

PeerProcess::~PeerProcess() {
  if (to_child_) std::fclose(to_child_);  // EOF on the child's stdin: it exits
  if (from_child_) std::fclose(from_child_);
  if (pid_ > 0) {
    int status;
    waitpid(pid_, &status, 0);
  }
}

std::optional<nlohmann::json> PeerProcess::read_reply() {
  std::string line;
  int ch;
  while ((ch = std::fgetc(from_child_)) != EOF && ch != '\n') line += static_cast<char>(ch);
  if (line.empty() && ch == EOF) {
    error_ = "the peer process exited (see its messages above)";
    return std::nullopt;
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    error_ = "the peer process printed something that is not JSON: " + line.substr(0, 200);
    return std::nullopt;
  }
  return j;
}

std::optional<nlohmann::json> PeerProcess::request(const nlohmann::json& req) {
  if (!ok() || !to_child_ || !from_child_) return std::nullopt;
  const std::string line = req.dump() + "\n";
  if (std::fputs(line.c_str(), to_child_) < 0 || std::fflush(to_child_) != 0) {
    error_ = "could not write to the peer process (it exited?)";
    return std::nullopt;
  }
  return read_reply();
}

std::optional<std::string> run_and_capture(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                           std::string& error) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    execvp(args[0], args.data());
    std::fprintf(stderr, "tessel: could not start %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error = std::string(argv[0]) + " exited with " +
            (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status)) : std::string("a signal"));
    return std::nullopt;
  }
  return text;
}

}  // namespace tessel::cli
