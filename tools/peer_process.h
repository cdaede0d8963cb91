// tools/peer_process.h — a persistent child process that answers one JSON request per line:
// how `tessel bench peers` talks to bench/peers/pytorch_peer.py --serve, so that tessel and
// PyTorch samples can alternate within one invocation.
#pragma once
#include <sys/types.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tessel::cli {

class PeerProcess {
 public:
  // Starts argv[0] with arguments argv[1..] (execvp, no shell), its stdin and stdout piped to
  // us, stderr shared. Reads the child's first line (its hello) into hello(). On failure
  // ok() is false and error() says why.
  explicit PeerProcess(const std::vector<std::string>& argv);
  ~PeerProcess();  // closes the child's stdin (it exits on EOF) and reaps it
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const nlohmann::json& hello() const { return hello_; }

  // Sends one request and waits for its one-line reply. nullopt (and error() set) if the
  // child died or answered something that is not JSON; a {"error": ...} reply is returned as is.
  std::optional<nlohmann::json> request(const nlohmann::json& req);

 private:
  std::optional<nlohmann::json> read_reply();
  pid_t pid_ = -1;
  FILE* to_child_ = nullptr;
  FILE* from_child_ = nullptr;
  std::string error_;
  nlohmann::json hello_;
};

// Runs argv (execvp, no shell) with `env` ("NAME=value" each) added to our environment, and
// returns what it printed on stdout (stderr is shared), or nullopt if it could not start or
// exited non-zero (`error` says which).
std::optional<std::string> run_and_capture(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                           std::string& error);

}  // namespace tessel::cli
