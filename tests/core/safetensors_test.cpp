// core/safetensors: round trips of every dtype and shape kind, metadata, atomic writes, and a
// corpus of corrupted and truncated files that must each be rejected with a clear error.
#include "core/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "tests/helpers.h"

using namespace tessel;
using namespace tessel::testing;
namespace fs = std::filesystem;

namespace {

// Values of every dtype: small integers for the integer types, 0/1 for bool, randn otherwise.
Tensor sample(const Shape& shape, DType dtype) {
  if (is_floating(dtype)) return randn(shape, {.dtype = dtype});
  Tensor src = randint(dtype == DType::b8 ? 0 : -1000, dtype == DType::b8 ? 2 : 1000, shape);
  Tensor t = empty(shape, {.dtype = dtype});
  copy_into(t, src);
  return t;
}

// The same geometry, but a non-contiguous view (transposed when 2-d+, strided otherwise).
Tensor noncontig_sample(const Shape& shape, DType dtype) {
  Shape big = shape;
  big.back() *= 2;
  Tensor base = sample(big, dtype);
  return slice(base, -1, 0, big.back(), 2).detach();
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  Tensor pa = empty(a.sizes(), {.dtype = a.dtype()}), pb = empty(b.sizes(), {.dtype = b.dtype()});
  copy_into(pa, a);
  copy_into(pb, b);
  size_t n = static_cast<size_t>(a.numel()) * a.element_size();
  return n == 0 || std::memcmp(pa.data(), pb.data(), n) == 0;
}

// 8-byte length (json's size unless given), the JSON, the data section.
std::vector<uint8_t> with_header(const std::string& json, const std::vector<uint8_t>& data,
                                 std::optional<uint64_t> len = std::nullopt) {
  uint64_t n = len ? *len : json.size();
  // Element by element: GCC 12 warns falsely (-Warray-bounds) on inserting ranges here.
  std::vector<uint8_t> out;
  out.reserve(8 + json.size() + data.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  for (char c : json) out.push_back(static_cast<uint8_t>(c));
  for (uint8_t c : data) out.push_back(c);
  return out;
}

SafetensorsFile load_mem(const std::vector<uint8_t>& b, size_t n) {
  return load_safetensors_from_memory(b.data(), n, "bad.safetensors");
}
SafetensorsFile load_mem(const std::vector<uint8_t>& b) { return load_mem(b, b.size()); }

// A corrupt input must either load (when the corruption kept it valid) or throw tessel::Error
// starting with the op and file name; anything else (another exception, a crash) fails.
void loads_or_rejects_cleanly(const std::vector<uint8_t>& bytes, size_t n, int* rejected) {
  try {
    load_mem(bytes, n);
  } catch (const Error& e) {
    ++*rejected;
    std::string what = e.what();
    CHECK_MESSAGE(what.rfind("safetensors: bad.safetensors: ", 0) == 0, what);
  }
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(n));
}

std::vector<uint8_t> small_valid_file() {
  return save_safetensors_to_memory({{"w", from_vector({1, 2, 3, 4, 5, 6}, {2, 3})},
                                     {"b", from_vector({0.5}, {1}, {.dtype = DType::bf16})},
                                     {"step", scalar_tensor(7, {.dtype = DType::i64})}},
                                    {{"format", "pt"}});
}

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("safetensors: every dtype round-trips bit for bit, 0-d, empty and non-contiguous included") {
    TempDir dir;
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (DType dt : kAllDTypes) {
      std::string n = dtype_name(dt);
      tensors.emplace_back(n + "_scalar", sample({}, dt));
      tensors.emplace_back(n + "_empty", sample({0}, dt));
      tensors.emplace_back(n + "_empty3d", sample({3, 0, 2}, dt));
      tensors.emplace_back(n + "_vec", sample({5}, dt));
      tensors.emplace_back(n + "_mat", sample({3, 7}, dt));
      tensors.emplace_back(n + "_noncontig", noncontig_sample({4, 3}, dt));
      tensors.emplace_back(n + "_transposed", transpose(sample({2, 5, 3}, dt), 0, 2).detach());
    }
    REQUIRE_FALSE(tensors[5].second.is_contiguous());
    REQUIRE_FALSE(tensors[6].second.is_contiguous());
    std::string path = dir.file("all.safetensors");
    save_safetensors(path, tensors);
    SafetensorsFile f = load_safetensors(path);
    REQUIRE(f.tensors.size() == tensors.size());
    for (const auto& [name, t] : tensors) {
      CAPTURE(name);
      REQUIRE(f.contains(name));
      const Tensor& got = f.at(name);
      CHECK(got.dtype() == t.dtype());
      CHECK(got.sizes() == t.sizes());
      // (core's is_contiguous() says false for some empty shapes such as [3, 0, 2]; nothing to pack there)
      CHECK((got.is_contiguous() || got.numel() == 0));
      CHECK(got.device().is_cpu());
      CHECK(same_bits(got, t));
    }
    CHECK(f.metadata.empty());
    // The in-memory writer produces the same bytes as the file.
    std::vector<uint8_t> mem = save_safetensors_to_memory(tensors);
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(mem == disk);
    SafetensorsFile g = load_safetensors_from_memory(mem.data(), mem.size());
    for (size_t i = 0; i < g.tensors.size(); ++i) {
      CHECK(g.tensors[i].first == f.tensors[i].first);
      CHECK(same_bits(g.tensors[i].second, f.tensors[i].second));
    }
  }

  TEST_CASE("safetensors: the layout follows the spec (8-aligned header, widest dtype first, spec dtype names)") {
    std::vector<uint8_t> b = save_safetensors_to_memory({{"flag", ones({3}, {.dtype = DType::b8})},
                                                         {"h", ones({2}, {.dtype = DType::f16})},
                                                         {"d", ones({2}, {.dtype = DType::f64})},
                                                         {"x", ones({1}, {.dtype = DType::bf16})}},
                                                        {{"k", "v"}});
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
    CHECK(n % 8 == 0);
    auto h = nlohmann::ordered_json::parse(b.begin() + 8, b.begin() + 8 + static_cast<int64_t>(n));
    CHECK(h["__metadata__"]["k"] == "v");
    CHECK(h["d"]["dtype"] == "F64");
    CHECK(h["h"]["dtype"] == "F16");
    CHECK(h["x"]["dtype"] == "BF16");
    CHECK(h["flag"]["dtype"] == "BOOL");
    CHECK(h["d"]["data_offsets"] == nlohmann::json::array({0, 16}));
    CHECK(h["h"]["data_offsets"] == nlohmann::json::array({16, 20}));
    CHECK(h["x"]["data_offsets"] == nlohmann::json::array({20, 22}));
    CHECK(h["flag"]["data_offsets"] == nlohmann::json::array({22, 25}));
    CHECK(h["flag"]["shape"] == nlohmann::json::array({3}));
    CHECK(b.size() == 8 + n + 25);
    // Tensors come back in file order.
    SafetensorsFile f = load_mem(b);
    REQUIRE(f.tensors.size() == 4);
    CHECK(f.tensors[0].first == "d");
    CHECK(f.tensors[3].first == "flag");
    CHECK(safetensors_dtype_from_name("I32") == DType::i32);
    CHECK(std::string(safetensors_dtype_name(DType::b8)) == "BOOL");
    CHECK_THROWS_WITH_AS(safetensors_dtype_from_name("U8"), doctest::Contains("'U8'"), Error);
  }

  TEST_CASE("safetensors: metadata round-trips; no tensors at all is a valid file") {
    TempDir dir;
    std::string path = dir.file("meta.safetensors");
    std::map<std::string, std::string> meta{{"format", "pt"}, {"step", "1200"}, {"note", "µ-param, \"quoted\"\n"}};
    save_safetensors(path, {{"x", ones({2})}}, meta);
    SafetensorsFile f = load_safetensors(path);
    CHECK(f.metadata == meta);
    save_safetensors(path, {}, {});  // overwrites the previous file
    SafetensorsFile e = load_safetensors(path);
    CHECK(e.tensors.empty());
    CHECK(e.metadata.empty());
    CHECK_THROWS_WITH_AS(e.at("x"), doctest::Contains("no tensor named 'x'"), Error);
  }

  TEST_CASE("safetensors: writes are atomic and bad arguments are refused") {
    TempDir dir;
    std::string path = dir.file("a.safetensors");
    save_safetensors(path, {{"x", ones({4})}});
    save_safetensors(path, {{"y", zeros({2})}});
    int files = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path)) ++files;
    CHECK(files == 1);  // no temporary file left behind
    CHECK(load_safetensors(path).contains("y"));

    // A failed write leaves the previous file untouched and no temporary behind.
    CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", ones({1})}, {"a", ones({1})}}),
                         doctest::Contains("tensor 'a' is given twice"), Error);
    CHECK(load_safetensors(path).contains("y"));
    files = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path)) ++files;
    CHECK(files == 1);

    CHECK_THROWS_WITH_AS(save_safetensors(path, {{"__metadata__", ones({1})}}), doctest::Contains("reserved"), Error);
    CHECK_THROWS_WITH_AS(save_safetensors(path, {{"u", Tensor()}}), doctest::Contains("'u' is undefined"), Error);
    CHECK_THROWS_WITH_AS(save_safetensors_to_memory({{std::string("bad\xff"), ones({1})}}), doctest::Contains("UTF-8"),
                         Error);
    std::string nodir = dir.file("missing/dir/x.safetensors");
    CHECK_THROWS_WITH_AS(save_safetensors(nodir, {{"x", ones({1})}}), doctest::Contains(nodir.c_str()), Error);
    CHECK_THROWS_WITH_AS(load_safetensors(dir.file("absent.safetensors")), doctest::Contains("cannot open"), Error);
    CHECK_THROWS_WITH_AS(load_safetensors(dir.path.string()), doctest::Contains("not a regular file"), Error);
  }

  TEST_CASE("safetensors: files from other writers: padded headers, any order, non-0/1 bools") {
    // Keys in any order, spaces after the JSON, a bool byte of 2 (read as true).
    std::string h = R"({"b":{"data_offsets":[4,6],"shape":[2],"dtype":"BOOL"},"a":{"dtype":"I32","shape":[],)"
                    R"("data_offsets":[0,4]},"__metadata__":{}})";
    h.append(5, ' ');
    std::vector<uint8_t> data = {42, 0, 0, 0, 2, 0};
    SafetensorsFile f = load_mem(with_header(h, data));
    CHECK(f.tensors[0].first == "a");
    CHECK(f.at("a").item() == 42);
    CHECK(f.at("b").to_vector<int64_t>() == std::vector<int64_t>{1, 0});
    CHECK(f.at("b").data_ptr<bool>()[0] == true);
    CHECK(*static_cast<const uint8_t*>(f.at("b").data()) == 1);
    // Two empty tensors at the same offset do not overlap.
    std::string e = R"({"p":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                    R"("q":{"dtype":"F64","shape":[4,0],"data_offsets":[0,0]}})";
    SafetensorsFile g = load_mem(with_header(e, {}));
    CHECK(g.at("q").sizes() == Shape{4, 0});
  }

  TEST_CASE("safetensors: a header of many entries parses in n log n") {
    // An insertion-ordered JSON object would make this quadratic (a denial of service from a
    // small file); 20000 names must stay well under a second.
    std::string h = "{";
    for (int i = 0; i < 20000; ++i)
      h += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
    h += "}";
    SafetensorsFile f = load_mem(with_header(h, {}));
    CHECK(f.tensors.size() == 20000u);
    CHECK(f.contains("t19999"));
  }

  TEST_CASE("safetensors: corrupted headers are rejected with errors that say what is wrong") {
    auto rejects = [](const std::vector<uint8_t>& bytes, const std::string& what) {
      CAPTURE(what);
      try {
        load_mem(bytes);
        FAIL("loaded without an error");
      } catch (const Error& e) {
        std::string msg = e.what();
        CHECK_MESSAGE(msg.rfind("safetensors: bad.safetensors: ", 0) == 0, msg);
        CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
      }
    };
    auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape,
                    const std::string& offs) {
      return "\"" + name + R"(":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offs + "}";
    };
    std::vector<uint8_t> d16(16, 0);

    rejects({1, 2, 3}, "the file is 3 bytes");
    rejects(with_header("", {}), "header length 0 is too short");
    rejects(with_header("{}", {}, ~uint64_t{0}), "exceeds the limit of 100000000 bytes");
    rejects(with_header("{}", {}, 100'000'001), "header length 100000001 exceeds the limit");
    rejects(with_header("{}", {}, 1000), "header length 1000 runs past the end of the file (10 bytes)");
    rejects(with_header("[1, 2]", {}), "does not start with '{'");
    rejects(with_header("{\"a\": ", {}), "the header is not valid JSON");
    rejects(with_header("{\"a\": 1} x", {}), "not valid JSON");
    rejects(with_header("{\"bad\xff\": 1}", {}), "not valid JSON");
    rejects(with_header(R"({"a":{"b":{"c":[[1]]}}})", {}), "nests deeper than 3 levels");
    rejects(with_header("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}", d16),
            "the header names 'a' twice");
    rejects(with_header(R"({"a": 1})", {}), "tensor 'a' is a JSON number; expected an object");
    rejects(with_header(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", d16), "tensor 'a' has no \"dtype\"");
    rejects(with_header(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", d16), "tensor 'a' has no \"shape\"");
    rejects(with_header(R"({"a": {"dtype": "F32", "shape": [1]}})", d16), "tensor 'a' has no \"data_offsets\"");
    rejects(with_header("{" + entry("a", "X9", "[4]", "[0,16]") + "}", d16), "tensor 'a' has dtype 'X9'");
    rejects(with_header("{" + entry("a", "U8", "[16]", "[0,16]") + "}", d16), "tensor 'a' has dtype 'U8'");
    rejects(with_header(R"({"a":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})", d16), "dtype is a JSON number");
    rejects(with_header("{" + entry("a", "F32", "[-4]", "[0,16]") + "}", d16), "expected non-negative integers");
    rejects(with_header("{" + entry("a", "F32", "[2.5]", "[0,16]") + "}", d16), "expected non-negative integers");
    rejects(with_header("{" + entry("a", "F32", "4", "[0,16]") + "}", d16), "shape is a JSON number");
    rejects(with_header("{" + entry("a", "F32", "[1,1,1,1,1,1,1,1,4]", "[0,16]") + "}", d16), "has 9 dims");
    rejects(with_header("{" + entry("a", "F32", "[4611686018427387904,4]", "[0,16]") + "}", d16), "too large");
    rejects(with_header("{" + entry("a", "F64", "[1152921504606846976]", "[0,16]") + "}", d16), "too large");
    rejects(with_header("{" + entry("a", "F32", "[4611686018427387904,4,0]", "[0,0]") + "}", {}), "too large");
    rejects(with_header("{" + entry("a", "F32", "[18446744073709551615]", "[0,16]") + "}", d16),
            "expected non-negative integers");
    rejects(with_header("{" + entry("w", "F32", "[5,6]", "[0,100]") + "}", std::vector<uint8_t>(100)),
            "tensor 'w' data_offsets [0, 100) do not match shape [5, 6] of F32 (120 bytes)");
    rejects(with_header("{" + entry("a", "F32", "[4]", "[16,0]") + "}", d16), "end before they begin");
    rejects(with_header("{" + entry("a", "F32", "[4]", "[0]") + "}", d16), "is not a pair of non-negative integers");
    rejects(with_header("{" + entry("a", "F32", "[4]", "[0,16,32]") + "}", d16), "is not a pair");
    rejects(with_header("{" + entry("a", "F32", "[4]", "[-16,0]") + "}", d16), "is not a pair");
    rejects(with_header("{" + entry("a", "F32", "[4]", "{}") + "}", d16), "is not a pair");
    rejects(with_header("{" + entry("a", "F32", "[250]", "[0,1000]") + "}", d16),
            "tensor 'a' data_offsets [0, 1000) run past the data section (16 bytes)");
    rejects(with_header("{" + entry("a", "F32", "[1]", "[18446744073709551611,18446744073709551615]") + "}", d16),
            "run past the data section");
    rejects(with_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}",
                        std::vector<uint8_t>(12)),
            "tensor 'b' data_offsets [4, 12) overlap tensor 'a' [0, 8)");
    rejects(with_header("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}",
                        std::vector<uint8_t>(12)),
            "data bytes [4, 8) belong to no tensor");
    rejects(with_header("{" + entry("a", "F32", "[1]", "[0,4]") + "}", std::vector<uint8_t>(12)),
            "the data section is 12 bytes but the tensors cover 4");
    rejects(with_header(R"({"__metadata__": [1]})", {}), "__metadata__ is a JSON array");
    rejects(with_header(R"({"__metadata__": {"k": 1}})", {}), "__metadata__ 'k' is a JSON number; expected a string");
  }

  TEST_CASE("safetensors: every truncation of a valid file is rejected, from memory and from disk") {
    std::vector<uint8_t> good = small_valid_file();
    REQUIRE(load_mem(good).tensors.size() == 3);
    TempDir dir;
    std::string path = dir.file("t.safetensors");
    for (size_t n = 0; n < good.size(); ++n) {
      CAPTURE(n);
      CHECK_THROWS_WITH_AS(load_mem(good, n), doctest::Contains("safetensors: bad.safetensors: "), Error);
      write_bytes(path, good, n);
      CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(("safetensors: " + path + ": ").c_str()), Error);
    }
    // One byte too many is an error too (a hole at the end of the data section).
    std::vector<uint8_t> longer = good;
    longer.push_back(0);
    CHECK_THROWS_WITH_AS(load_mem(longer), doctest::Contains("trailing bytes"), Error);
  }

  TEST_CASE("safetensors: flipped and mutated bytes never crash the reader") {
    std::vector<uint8_t> good = small_valid_file();
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | good[i];
    int rejected = 0, tried = 0;
    // Every bit of the length and of the header, one at a time.
    for (size_t i = 0; i < 8 + header_len; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<uint8_t> b = good;
        b[i] ^= static_cast<uint8_t>(1u << bit);
        loads_or_rejects_cleanly(b, b.size(), &rejected);
        ++tried;
      }
    }
    // Digits changed into other digits keep the JSON valid and exercise the offset checks.
    for (size_t i = 8; i < 8 + header_len; ++i) {
      if (good[i] < '0' || good[i] > '9') continue;
      for (char c = '0'; c <= '9'; ++c) {
        std::vector<uint8_t> b = good;
        if (b[i] == static_cast<uint8_t>(c)) continue;
        b[i] = static_cast<uint8_t>(c);
        loads_or_rejects_cleanly(b, b.size(), &rejected);
        ++tried;
      }
    }
    // Random multi-byte mutations, insertions and deletions (seeded: the same corpus every run).
    std::mt19937 rng(1234);
    for (int iter = 0; iter < 3000; ++iter) {
      std::vector<uint8_t> b = good;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !b.empty(); ++k) {
        size_t at = rng() % b.size();
        switch (rng() % 3) {
          case 0: b[at] = static_cast<uint8_t>(rng()); break;
          case 1: b.insert(b.begin() + static_cast<int64_t>(at), static_cast<uint8_t>(rng())); break;
          default: b.erase(b.begin() + static_cast<int64_t>(at)); break;
        }
      }
      loads_or_rejects_cleanly(b, b.size(), &rejected);
      ++tried;
    }
    MESSAGE("safetensors mutation corpus: ", tried, " inputs, ", rejected, " rejected with tessel::Error");
    CHECK(rejected > tried * 9 / 10);  // nearly every mutation breaks something the reader checks
  }
}
