// core/safetensors.cpp — the safetensors reader and writer (format: core/safetensors.h).
//
// The reader never trusts the file: it bounds the header length before reading the header,
// parses the JSON with nlohmann-json (depth-limited, duplicate names rejected), checks every
// entry and the layout of the whole data section, and only then allocates tensors, whose
// total size is therefore bounded by the file's size. Files are read with pread (no mmap, so
// a file truncated by someone else while we read it gives an error, not a SIGBUS).
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

namespace tessel {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian bytes; tessel copies them as they are");

namespace {

// std::map-backed objects: parsing n names costs O(n log n) (an insertion-ordered object would
// cost O(n^2), a denial of service from a header of many small entries). The order of the JSON
// keys carries no meaning; the data offsets order the tensors.
using json = nlohmann::json;

// The reference implementation's limit: larger headers are refused before they are read.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Containers: the root object, a tensor entry (or __metadata__), its "shape" or "data_offsets"
// array; nothing legitimate nests deeper.
constexpr int kMaxJsonDepth = 3;

template <class... Parts>
[[noreturn]] void bad(const std::string& file, const Parts&... parts) {
  fail("safetensors", file, ": ", parts...);
}

std::string range_str(uint64_t b, uint64_t e) {
  std::ostringstream os;  // not "[" + std::to_string(b): GCC 12 warns falsely on that (-Wrestrict)
  os << '[' << b << ", " << e << ')';
  return os.str();
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Reads n bytes at `offset` of the data source into dst (throws on a short read).
using ReadAt = std::function<void(uint64_t offset, void* dst, size_t n)>;

Entry parse_entry(const std::string& file, const std::string& name, const json& v, uint64_t data_size) {
  Entry e;
  e.name = name;
  const std::string who = "tensor '" + name + "'";
  if (!v.is_object())
    bad(file, who, " is a JSON ", v.type_name(), "; expected an object with dtype, shape, data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) bad(file, who, " has no \"", key, "\"");

  const json& dt = v.at("dtype");
  if (!dt.is_string()) bad(file, who, " dtype is a JSON ", dt.type_name(), "; expected a string such as \"F32\"");
  const std::string& dname = dt.get_ref<const std::string&>();
  try {
    e.dtype = safetensors_dtype_from_name(dname);
  } catch (const Error&) {
    bad(file, who, " has dtype '", dname,
        "', which tessel does not read (it reads F32, F64, BF16, F16, I32, I64, BOOL)");
  }

  const json& sh = v.at("shape");
  if (!sh.is_array()) bad(file, who, " shape is a JSON ", sh.type_name(), "; expected an array of sizes");
  if (sh.size() > static_cast<size_t>(kMaxDims))
    bad(file, who, " has ", sh.size(), " dims; tessel tensors have at most ", kMaxDims);
  for (const json& d : sh) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      bad(file, who, " shape ", sh.dump(), " holds ", d.dump(), "; expected non-negative integers");
    e.shape.push_back(d.get<int64_t>());
  }
  // The bytes the shape needs, without overflow. The non-zero sizes must multiply to an
  // addressable count even when a zero makes the tensor empty: tessel's strides are products
  // of them.
  uint64_t nonzero = 1, nbytes = 0;
  bool overflow = false, has_zero = false;
  for (int64_t d : e.shape) {
    if (d == 0)
      has_zero = true;
    else
      overflow |= __builtin_mul_overflow(nonzero, static_cast<uint64_t>(d), &nonzero);
  }
  overflow |= __builtin_mul_overflow(nonzero, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes);
  if (overflow || nbytes > static_cast<uint64_t>(INT64_MAX))
    bad(file, who, " shape ", e.shape, " of ", dname, " is too large to address");
  if (has_zero) nbytes = 0;

  const json& off = v.at("data_offsets");
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    bad(file, who, " data_offsets ", off.dump(), " is not a pair of non-negative integers [begin, end]");
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end) bad(file, who, " data_offsets ", off.dump(), " end before they begin");
  if (e.end - e.begin != nbytes)
    bad(file, who, " data_offsets ", range_str(e.begin, e.end), " do not match shape ", e.shape, " of ", dname, " (",
        nbytes, " bytes)");
  if (e.end > data_size)
    bad(file, who, " data_offsets ", range_str(e.begin, e.end), " run past the data section (", data_size, " bytes)");
  return e;
}

// SAX events of the header: containers nest at most kMaxJsonDepth deep, and the root object
// names each key once. Malformed JSON throws nlohmann's parse_error from parse_error().
class HeaderCheck : public nlohmann::json_sax<json> {
 public:
  explicit HeaderCheck(const std::string& file) : file_(file) {}
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_object() override { return leave(); }
  bool end_array() override { return leave(); }
  bool key(string_t& k) override {
    if (depth_ == 1 && !seen_.insert(k).second) bad(file_, "the header names '", k, "' twice");
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    bad(file_, "the header is not valid JSON: ", e.what());
  }

 private:
  bool enter() {
    if (++depth_ > kMaxJsonDepth) bad(file_, "the JSON header nests deeper than ", kMaxJsonDepth, " levels");
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }
  const std::string& file_;
  int depth_ = 0;
  std::set<std::string> seen_;
};

SafetensorsFile load_impl(const std::string& file, uint64_t file_size, const ReadAt& read_at) {
  if (file_size < 8)
    bad(file, "the file is ", file_size, " bytes; a safetensors file starts with an 8-byte header length");
  unsigned char len_bytes[8];
  read_at(0, len_bytes, 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes)
    bad(file, "header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes, " bytes (corrupt file?)");
  if (header_len > file_size - 8)
    bad(file, "header length ", header_len, " runs past the end of the file (", file_size, " bytes)");
  if (header_len < 2) bad(file, "header length ", header_len, " is too short for a JSON object");
  const uint64_t data_size = file_size - 8 - header_len;

  std::string header(header_len, '\0');
  read_at(8, header.data(), header_len);
  if (header[0] != '{') bad(file, "the header does not start with '{'; expected a JSON object");

  // A first, streaming pass refuses deep nesting (no legitimate header needs it) and names
  // given twice (JSON allows them; a checkpoint must not). Not a parse callback: nlohmann's
  // callback parser rescans the enclosing object after every member, which is quadratic.
  HeaderCheck check_pass(file);
  try {
    json::sax_parse(header.begin(), header.end(), &check_pass);
  } catch (const nlohmann::json::exception& e) {
    bad(file, "the header is not valid JSON: ", e.what());
  }
  json root;
  try {
    root = json::parse(header.begin(), header.end());
  } catch (const nlohmann::json::exception& e) {
    bad(file, "the header is not valid JSON: ", e.what());
  }
  if (!root.is_object()) bad(file, "the header is a JSON ", root.type_name(), "; expected an object");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        bad(file, "__metadata__ is a JSON ", value.type_name(), "; expected an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) bad(file, "__metadata__ '", mk, "' is a JSON ", mv.type_name(), "; expected a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(file, key, value, data_size));
  }

  // The tensors must tile the data section exactly, as the reference reader demands.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < pos)
      bad(file, "tensor '", e.name, "' data_offsets ", range_str(e.begin, e.end), " overlap tensor '", prev->name, "' ",
          range_str(prev->begin, prev->end));
    if (e.begin > pos) bad(file, "data bytes ", range_str(pos, e.begin), " belong to no tensor");
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size)
    bad(file, "the data section is ", data_size, " bytes but the tensors cover ", pos,
        (pos < data_size ? " (trailing bytes, or a wrong header length?)" : ""));

  // Everything checked: allocate and read.
  const uint64_t data_start = 8 + header_len;
  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    if (e.end > e.begin) read_at(data_start + e.begin, t.data(), e.end - e.begin);
    if (e.dtype == DType::b8) {
      // A C++ bool must hold 0 or 1; other writers may store any non-zero byte for true.
      auto* p = static_cast<unsigned char*>(t.data());
      for (uint64_t i = 0; i < e.end - e.begin; ++i) p[i] = p[i] != 0;
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

// ---------------------------------------------------------------- writing

using Sink = std::function<void(const void* p, size_t n)>;

void save_impl(const char* what, const std::vector<std::pair<std::string, Tensor>>& tensors,
               const std::map<std::string, std::string>& metadata, const Sink& sink) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("safetensors", what, ": '__metadata__' is reserved and cannot name a tensor");
    if (!names.insert(name).second) fail("safetensors", what, ": tensor '", name, "' is given twice");
    if (!t.defined()) fail("safetensors", what, ": tensor '", name, "' is undefined");
    if (!t.device().is_cpu() && !t.is_contiguous())
      fail("safetensors", what, ": tensor '", name, "' is a non-contiguous view on ", t.device().str(),
           "; make it contiguous or move it to the CPU first");
  }
  // Widest elements first (stable): with an 8-aligned data section every tensor then starts at
  // a multiple of its element size, which readers that map the file rely on.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].second.element_size() > tensors[b].second.element_size();
  });

  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t pos = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    json e = json::object();
    e["dtype"] = safetensors_dtype_name(t.dtype());
    e["shape"] = t.sizes();
    e["data_offsets"] = {pos, pos + nbytes};
    header[name] = std::move(e);
    pos += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors", what, ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-aligned

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  sink(len_bytes, 8);
  sink(text.data(), text.size());

  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (nbytes == 0) continue;
    if (t.device().is_cpu() && t.is_contiguous()) {
      sink(t.data(), nbytes);
    } else if (t.device().is_cpu()) {
      Tensor packed = empty(t.sizes(), {.dtype = t.dtype()});
      copy_into(packed, t);
      sink(packed.data(), nbytes);
    } else {
      const DeviceAllocatorHooks* hooks = device_hooks(t.device().type);
      if (!hooks || !hooks->copy)
        fail("safetensors", what, ": tensor '", tensors[i].first, "' is on ", t.device().str(),
             ", a device this build cannot copy from");
      Tensor host = empty(t.sizes(), {.dtype = t.dtype()});
      hooks->copy(host.data(), Device::cpu(), t.data(), t.device(), nbytes);
      sink(host.data(), nbytes);
    }
  }
}

std::string errno_str(int err) { return std::strerror(err); }

// Closes and removes a temporary file unless it was committed.
struct TempFile {
  std::string path;
  int fd = -1;
  bool committed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!committed && !path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

// ---------------------------------------------------------------- public API

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::b8: return "BOOL";
  }
  fail("safetensors", "unknown dtype code ", static_cast<int>(t));
}

DType safetensors_dtype_from_name(const std::string& name) {
  for (DType t : kAllDTypes)
    if (name == safetensors_dtype_name(t)) return t;
  fail("safetensors", "dtype '", name, "' is not one tessel holds (F32, F64, BF16, F16, I32, I64, BOOL)");
}

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  fail("safetensors", "no tensor named '", name, "' (the file holds ", tensors.size(), " tensors)");
}

std::vector<uint8_t> save_safetensors_to_memory(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                const std::map<std::string, std::string>& metadata) {
  std::vector<uint8_t> out;
  save_impl("<memory>", tensors, metadata, [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  static std::atomic<uint64_t> counter{0};
  TempFile tmp;
  tmp.path = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (tmp.fd < 0) {
    int err = errno;
    tmp.path.clear();  // not ours to remove
    fail("safetensors", path, ": cannot create the temporary file next to it: ", errno_str(err));
  }
  save_impl(path.c_str(), tensors, metadata, [&](const void* p, size_t n) {
    const char* b = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = ::write(tmp.fd, b, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("safetensors", path, ": write failed: ", errno_str(errno));
      b += w;
      n -= static_cast<size_t>(w);
    }
  });
  if (::fsync(tmp.fd) != 0) fail("safetensors", path, ": fsync failed: ", errno_str(errno));
  int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail("safetensors", path, ": close failed: ", errno_str(errno));
  if (::rename(tmp.path.c_str(), path.c_str()) != 0)
    fail("safetensors", path, ": cannot rename the temporary file into place: ", errno_str(errno));
  tmp.committed = true;
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

SafetensorsFile load_safetensors_from_memory(const void* data, size_t size, const std::string& name) {
  if (data == nullptr && size > 0) fail("safetensors", name, ": null data of ", size, " bytes");
  const auto* base = static_cast<const unsigned char*>(data);
  return load_impl(name, size, [&](uint64_t offset, void* dst, size_t n) {
    if (offset > size || n > size - offset)
      fail("safetensors", name, ": internal: read of ", n, " bytes at ", offset, " past ", size);
    std::memcpy(dst, base + offset, n);
  });
}

SafetensorsFile load_safetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang waiting for a writer (it is then refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("safetensors", path, ": cannot open: ", errno_str(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("safetensors", path, ": cannot stat: ", errno_str(errno));
  if (!S_ISREG(st.st_mode)) fail("safetensors", path, ": not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  return load_impl(path, size, [&](uint64_t offset, void* dst, size_t n) {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("safetensors", path, ": read failed at byte ", offset, ": ", errno_str(errno));
      if (r == 0) fail("safetensors", path, ": the file ended at byte ", offset, " while reading (was it truncated?)");
      p += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
  });
}

}  // namespace tessel
