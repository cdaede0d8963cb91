#include "core/error.h"

namespace tessel {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = ndim == 0 ? 1 : ndim;
  if (dim < -n || dim >= n)
    fail(op, "dim ", dim, " is out of range for a tensor with ", ndim, " dims; expected dim in [", -n, ", ", n - 1,
         "]");
  return dim < 0 ? dim + n : dim;
}

}  // namespace tessel
