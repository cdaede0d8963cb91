// core/error.h — the one exception type tessel throws, and the helpers that build its message.
//
// Every public entry point validates its arguments and throws tessel::Error whose message names
// the op, the shapes involved and what was expected, e.g.
//   "matmul: inner dimensions differ: a is [2, 3], b is [4, 5]; expected a.size(-1) == b.size(-2)"
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessel {

using Shape = std::vector<int64_t>;

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

std::string shape_str(const Shape& s);  // "[2, 3]"

namespace detail {
inline void put(std::ostringstream& os, const Shape& s) { os << shape_str(s); }
template <class T>
void put(std::ostringstream& os, const T& v) {
  os << v;
}
}  // namespace detail

// Concatenates the parts (shapes print as [a, b]) into "op: parts..." and throws.
template <class... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream os;
  os << op << ": ";
  (detail::put(os, parts), ...);
  throw Error(os.str());
}

template <class... Parts>
void check(bool ok, const char* op, const Parts&... parts) {
  if (!ok) fail(op, parts...);
}

// Wraps a possibly negative dim into [0, ndim); `ndim` 0 accepts -1 and 0 (like a 1-d view).
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace tessel
