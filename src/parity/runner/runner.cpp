// parity's C++ runner: runs an exported artifact with libtorch alone, no Python interpreter.
//
// Built on first use by parity.runner.build against the libtorch inside the user's torch
// wheel. It loads a TorchScript file (torch::jit::load) or an AOTInductor .pt2 package
// (torch::inductor::AOTIModelPackageLoader), reads the inputs from a safetensors file,
// runs them, and writes the outputs to a safetensors file; with --threads/--seconds (or
// --iterations) it also times requests from N threads and reports each latency.
//
//   parity-runner --format torchscript|aoti --model FILE --inputs IN.safetensors
//                 [--outputs OUT.safetensors] [--input-names a,b] [--threads N]
//                 [--seconds S | --iterations K] [--warmup W] [--torch-threads T]
//   parity-runner --format F --model FILE --serve 1
//       one process, many requests: prints {"ready":...} then, for each stdin line
//       "IN.safetensors<TAB>OUT.safetensors[<TAB>name,name]", runs it and prints one JSON line.
//
// stdout: one JSON document (parity.runner/1). Errors: one line on stderr, exit 2 for a
// file or flag the user can fix, 3 for anything else.

#include <torch/script.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

constexpr const char* kSchema = "parity.runner/1";
constexpr const char* kMetaKey = "parity.json";
constexpr uint64_t kMaxHeader = 100ull << 20;

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------- JSON (a strict subset reader)

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;          // String; for Number, the literal text
  std::vector<Json> items;  // Array
  std::vector<std::pair<std::string, Json>> fields;  // Object, in file order

  const Json* get(const std::string& key) const {
    for (const auto& kv : fields)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
};

class JsonReader {
 public:
  JsonReader(const std::string& text, std::string where) : s_(text), where_(std::move(where)) {}

  Json parse() {
    Json v = value(0);
    space();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  const std::string& s_;
  std::string where_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& why) {
    throw UserError(where_ + ": invalid JSON header (" + why + " at byte " + std::to_string(i_) + ")");
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    space();
    if (i_ >= s_.size() || s_[i_] != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(const char* word) {
    size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) == 0) {
      i_ += n;
      return true;
    }
    return false;
  }
  Json value(int depth) {
    if (depth > 64) fail("nested too deeply");
    space();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    char c = s_[i_];
    if (c == '{') {
      v.kind = Json::Object;
      ++i_;
      space();
      if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
      for (;;) {
        space();
        std::string key = string();
        for (const auto& kv : v.fields)
          if (kv.first == key) fail("duplicate key \"" + key + "\"");
        expect(':');
        v.fields.emplace_back(key, value(depth + 1));
        space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Array;
      ++i_;
      space();
      if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
      for (;;) {
        v.items.push_back(value(depth + 1));
        space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::String;
      v.str = string();
      return v;
    }
    if (literal("true")) { v.kind = Json::Bool; v.b = true; return v; }
    if (literal("false")) { v.kind = Json::Bool; return v; }
    if (literal("null")) return v;
    return number();
  }
  Json number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ == digits) fail("expected a value");
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    Json v;
    v.kind = Json::Number;
    v.str = s_.substr(start, i_ - start);
    v.num = std::strtod(v.str.c_str(), nullptr);
    return v;
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned cp = 0;
    for (int k = 0; k < 4; ++k) {
      char h = s_[i_++];
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f') cp |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') cp |= unsigned(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return cp;
  }
  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) { out += char(cp); }
    else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    }
  }
  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 6 <= s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
    fail("unterminated string");
  }
};

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += char(c);
  }
  return out + "\"";
}

// ---------------------------------------------------------------- safetensors

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  size_t size;
};

const DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

uint64_t checked_u64(const Json& v, const std::string& where) {
  if (v.kind != Json::Number || v.str.empty() || v.str[0] == '-' ||
      v.str.find_first_not_of("0123456789") != std::string::npos || v.str.size() > 19)
    throw UserError(where + " must be a non-negative integer");
  return std::stoull(v.str);
}

// Tensors of a safetensors file, in the header's order. Every size and offset is checked
// against the file: a header that points outside the data, overlaps or leaves holes is refused.
std::vector<std::pair<std::string, at::Tensor>> read_safetensors(const std::string& path) {
  std::string raw = read_file(path);
  if (raw.size() < 8) throw UserError(path + ": not a safetensors file (shorter than 8 bytes)");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(raw[k]);
  if (n > kMaxHeader || n > raw.size() - 8)
    throw UserError(path + ": not a safetensors file (header length " + std::to_string(n) + " out of range)");
  Json header = JsonReader(raw.substr(8, n), path).parse();
  if (header.kind != Json::Object) throw UserError(path + ": the safetensors header is not an object");
  const uint64_t data_len = raw.size() - 8 - n;
  const char* data = raw.data() + 8 + n;
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& kv : header.fields) {
    if (kv.first == "__metadata__") continue;
    const std::string where = path + ": tensor " + quote(kv.first);
    const Json& e = kv.second;
    const Json* dt = e.get("dtype");
    const Json* shape = e.get("shape");
    const Json* offs = e.get("data_offsets");
    if (e.kind != Json::Object || !dt || dt->kind != Json::String || !shape || shape->kind != Json::Array ||
        !offs || offs->kind != Json::Array || offs->items.size() != 2)
      throw UserError(where + " needs dtype, shape and data_offsets [begin, end]");
    const DtypeInfo* info = dtype_by_name(dt->str);
    if (!info) throw UserError(where + ": unsupported dtype " + quote(dt->str));
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (const auto& d : shape->items) {
      uint64_t v = checked_u64(d, where + " shape");
      if (v > (1ull << 40) || (v && numel > (1ull << 50) / v)) throw UserError(where + ": shape too large");
      numel *= v;
      dims.push_back(static_cast<int64_t>(v));
    }
    uint64_t begin = checked_u64(offs->items[0], where + " data_offsets");
    uint64_t end = checked_u64(offs->items[1], where + " data_offsets");
    if (begin > end || end > data_len) throw UserError(where + ": data_offsets outside the file");
    if (end - begin != numel * info->size)
      throw UserError(where + ": data_offsets hold " + std::to_string(end - begin) + " bytes, shape and dtype need " +
                      std::to_string(numel * info->size));
    spans.emplace_back(begin, end);
    at::Tensor t = at::empty(dims, at::TensorOptions().dtype(info->type));
    if (numel) std::memcpy(t.data_ptr(), data + begin, end - begin);
    out.emplace_back(kv.first, t);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at_byte = 0;
  for (const auto& s : spans) {
    if (s.first != at_byte) throw UserError(path + ": tensor data overlap or leave holes (not a safetensors file)");
    at_byte = s.second;
  }
  if (at_byte != data_len) throw UserError(path + ": bytes after the last tensor (not a safetensors file)");
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<at::Tensor> bodies;
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    at::Tensor t = tensors[k].second.detach().to(at::kCPU).contiguous();
    const DtypeInfo* info = dtype_by_type(t.scalar_type());
    if (!info) throw UserError("output " + quote(tensors[k].first) + ": dtype " + std::string(c10::toString(t.scalar_type())) +
                               " cannot be written to safetensors");
    uint64_t bytes = uint64_t(t.numel()) * info->size;
    if (k) header += ",";
    header += quote(tensors[k].first) + ":{\"dtype\":\"" + info->name + "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) header += (d ? "," : "") + std::to_string(t.size(d));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    bodies.push_back(t);
  }
  header += "}";
  while ((header.size() + 8) % 8) header += ' ';
  std::string tmp = path + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UserError(path + ": cannot write (" + std::strerror(errno) + ")");
    uint64_t n = header.size();
    char len[8];
    for (int k = 0; k < 8; ++k) len[k] = char((n >> (8 * k)) & 0xFF);
    out.write(len, 8);
    out.write(header.data(), std::streamsize(header.size()));
    for (const auto& t : bodies)
      out.write(static_cast<const char*>(t.data_ptr()), std::streamsize(t.numel() * t.element_size()));
    out.flush();
    if (!out) throw UserError(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw UserError(path + ": cannot write (" + std::strerror(errno) + ")");
  }
}

// ---------------------------------------------------------------- outputs, named like parity

// parity.target.formats.model_io.flatten_outputs: a tensor alone is "output", mappings use
// their keys, sequences their positions, joined with dots; None entries are skipped.
void flatten(const c10::IValue& v, const std::string& prefix, std::vector<std::pair<std::string, at::Tensor>>& out) {
  auto join = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  if (v.isTensor()) {
    out.emplace_back(prefix.empty() ? "output" : prefix, v.toTensor());
  } else if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    for (size_t k = 0; k < elems.size(); ++k) flatten(elems[k], join(std::to_string(k)), out);
  } else if (v.isList()) {
    auto list = v.toListRef();
    for (size_t k = 0; k < list.size(); ++k) flatten(list[k], join(std::to_string(k)), out);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      const auto& key = kv.key();
      std::string name = key.isString() ? key.toStringRef() : (key.isInt() ? std::to_string(key.toInt()) : "?");
      flatten(kv.value(), join(name), out);
    }
  } else if (v.isNone()) {
    return;
  } else {
    throw UserError("the model returned a " + v.tagKind() + (prefix.empty() ? "" : " at " + prefix) +
                    "; parity's runner writes tensors only");
  }
}

// ---------------------------------------------------------------- models

struct Meta {
  std::vector<std::string> input_names, output_names;
  bool single_output = false;
  bool kwargs_call = false;  // a scripted model keeps the user's forward(**inputs)
  bool present = false;
};

std::vector<std::string> strings_of(const Json* v) {
  std::vector<std::string> out;
  if (v && v->kind == Json::Array)
    for (const auto& s : v->items)
      if (s.kind == Json::String) out.push_back(s.str);
  return out;
}

Meta parse_meta(const std::string& text, const std::string& model) {
  Meta m;
  if (text.empty()) return m;
  Json doc = JsonReader(text, model + ": parity metadata").parse();
  const Json* schema = doc.get("schema");
  if (!schema || schema->kind != Json::String || schema->str != "parity.artifact/1")
    throw UserError(model + ": its parity metadata has an unknown schema");
  m.present = true;
  m.input_names = strings_of(doc.get("input_names"));
  m.output_names = strings_of(doc.get("output_names"));
  const Json* single = doc.get("single_output");
  m.single_output = single && single->kind == Json::Bool && single->b;
  const Json* method = doc.get("method");
  const Json* call = doc.get("call");
  m.kwargs_call = method && method->kind == Json::String && method->str == "script" && call &&
                  call->kind == Json::String && call->str == "kwargs";
  return m;
}

class Model {
 public:
  virtual ~Model() = default;
  virtual std::vector<std::pair<std::string, at::Tensor>> run(const std::vector<at::Tensor>& inputs) = 0;
  Meta meta;
  std::string meta_text;
};

class ScriptModel : public Model {
 public:
  ScriptModel(const std::string& path) {
    torch::jit::ExtraFilesMap extra{{kMetaKey, ""}};
    module_ = torch::jit::load(path, at::kCPU, extra);
    module_.eval();
    meta_text = extra[kMetaKey];
    meta = parse_meta(meta_text, path);
  }
  std::vector<std::pair<std::string, at::Tensor>> run(const std::vector<at::Tensor>& inputs) override {
    std::vector<c10::IValue> args;
    torch::jit::Kwargs kwargs;
    for (size_t k = 0; k < inputs.size(); ++k) {
      if (meta.kwargs_call) kwargs[meta.input_names.at(k)] = inputs[k];
      else args.emplace_back(inputs[k]);
    }
    c10::IValue result = module_.get_method("forward")(std::move(args), kwargs);
    std::vector<std::pair<std::string, at::Tensor>> out;
    flatten(result, "", out);
    return out;
  }

 private:
  torch::jit::Module module_;
};

class AotiModel : public Model {
 public:
  AotiModel(const std::string& path, size_t runners)
      : loader_(path, "model", false, std::max<size_t>(1, runners)) {
    auto md = loader_.get_metadata();
    auto it = md.find(kMetaKey);
    meta_text = it == md.end() ? "" : it->second;
    meta = parse_meta(meta_text, path);
  }
  std::vector<std::pair<std::string, at::Tensor>> run(const std::vector<at::Tensor>& inputs) override {
    std::vector<at::Tensor> got = loader_.run(inputs);
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (size_t k = 0; k < got.size(); ++k) out.emplace_back(std::to_string(k), got[k]);
    if (got.size() == 1) out[0].first = "output";
    return out;
  }

 private:
  torch::inductor::AOTIModelPackageLoader loader_;
};

// The artifact's flat outputs under the eager names (parity.target.artifacts.ArtifactModel).
std::vector<std::pair<std::string, at::Tensor>> named(const Meta& meta,
                                                      std::vector<std::pair<std::string, at::Tensor>> flat) {
  if (!meta.present) return flat;
  if (meta.single_output && flat.size() == 1) {
    flat[0].first = "output";
    return flat;
  }
  if (meta.output_names.size() == flat.size())
    for (size_t k = 0; k < flat.size(); ++k) flat[k].first = meta.output_names[k];
  return flat;
}

// ---------------------------------------------------------------- arguments and main

struct Args {
  std::string format, model, inputs, outputs;
  std::vector<std::string> input_names;
  int threads = 1, warmup = 3, torch_threads = 0;
  bool serve = false;
  double seconds = 0;
  long iterations = 0;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ','))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

long to_long(const std::string& flag, const std::string& v, long low) {
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || n < low) throw UserError(flag + " " + v + ": must be an integer >= " + std::to_string(low));
  return n;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int k = 1; k < argc; ++k) {
    std::string flag = argv[k];
    if (k + 1 >= argc) throw UserError(flag + ": needs a value");
    std::string v = argv[++k];
    if (flag == "--format") a.format = v;
    else if (flag == "--model") a.model = v;
    else if (flag == "--inputs") a.inputs = v;
    else if (flag == "--outputs") a.outputs = v;
    else if (flag == "--input-names") a.input_names = split(v);
    else if (flag == "--threads") a.threads = int(to_long(flag, v, 1));
    else if (flag == "--warmup") a.warmup = int(to_long(flag, v, 0));
    else if (flag == "--torch-threads") a.torch_threads = int(to_long(flag, v, 0));
    else if (flag == "--iterations") a.iterations = to_long(flag, v, 1);
    else if (flag == "--serve") a.serve = to_long(flag, v, 0) != 0;
    else if (flag == "--seconds") {
      char* end = nullptr;
      a.seconds = std::strtod(v.c_str(), &end);
      if (*end || !(a.seconds > 0) || !std::isfinite(a.seconds)) throw UserError("--seconds " + v + ": must be > 0");
    } else throw UserError(flag + ": unknown option");
  }
  if (a.format != "torchscript" && a.format != "aoti") throw UserError("--format must be torchscript or aoti");
  if (a.model.empty() || (a.inputs.empty() && !a.serve)) throw UserError("--model and --inputs are required");
  return a;
}

std::vector<at::Tensor> ordered_inputs(const Args& a, const Meta& meta,
                                       const std::vector<std::pair<std::string, at::Tensor>>& given) {
  std::vector<std::string> order = !a.input_names.empty() ? a.input_names : meta.input_names;
  std::vector<at::Tensor> out;
  if (order.empty()) {
    for (const auto& kv : given) out.push_back(kv.second);
    return out;
  }
  for (const auto& name : order) {
    auto it = std::find_if(given.begin(), given.end(), [&](const auto& kv) { return kv.first == name; });
    if (it == given.end()) throw UserError(a.inputs + ": has no tensor " + quote(name) + " (the model's input)");
    out.push_back(it->second);
  }
  if (given.size() != order.size()) throw UserError(a.inputs + ": holds tensors the model does not take");
  return out;
}

// Whether a Python interpreter is mapped into this process: libpython, an interpreter
// executable (python3.11), libtorch_python or a CPython extension module (.cpython-).
// Folder names do not count: the wheel's libtorch lives under .../python3.11/site-packages.
bool libpython_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    std::string base = line.substr(slash + 1);
    if (base.rfind("libpython", 0) == 0 || base.rfind("python", 0) == 0 ||
        base.find("libtorch_python") != std::string::npos || base.find(".cpython-") != std::string::npos)
      return true;
  }
  return false;
}

struct Timing {
  std::vector<double> latencies;
  double wall = 0;
};

Timing time_requests(Model& model, const std::vector<at::Tensor>& inputs, const Args& a) {
  for (int k = 0; k < a.warmup; ++k) model.run(inputs);
  std::vector<std::vector<double>> per(a.threads);
  std::atomic<long> issued{0};
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(a.seconds));
  std::vector<std::thread> pool;
  std::vector<std::string> errors(a.threads);
  for (int t = 0; t < a.threads; ++t) {
    pool.emplace_back([&, t] {
      c10::InferenceMode guard;
      try {
        for (;;) {
          if (a.iterations ? issued.fetch_add(1) >= a.iterations : clock::now() >= deadline) break;
          auto t0 = clock::now();
          model.run(inputs);
          per[t].push_back(std::chrono::duration<double>(clock::now() - t0).count());
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : pool) th.join();
  Timing out;
  out.wall = std::chrono::duration<double>(clock::now() - start).count();
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error("a request failed while timing: " + e);
  for (const auto& v : per) out.latencies.insert(out.latencies.end(), v.begin(), v.end());
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string outputs_json(const std::vector<std::pair<std::string, at::Tensor>>& outputs) {
  std::string doc = "[";
  for (size_t k = 0; k < outputs.size(); ++k) doc += (k ? "," : "") + quote(outputs[k].first);
  return doc + "]";
}

void emit(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

// One loaded model, many requests over stdin/stdout; a failed request is an error line,
// the process stays up. Ends at end of input.
int serve(Model& model, const Args& a, double load_s) {
  emit("{\"schema\":\"" + std::string(kSchema) + "\",\"ready\":true,\"pid\":" + std::to_string(getpid()) +
       ",\"libpython_mapped\":" + (libpython_mapped() ? "true" : "false") + ",\"load_seconds\":" +
       number(load_s) + ",\"meta\":" + quote(model.meta_text) + "}\n");
  std::string line;
  while (std::getline(std::cin, line)) {
    auto tab = line.find('\t');
    try {
      if (tab == std::string::npos) throw UserError("a request is IN<TAB>OUT");
      Args one = a;
      one.inputs = line.substr(0, tab);
      auto tab2 = line.find('\t', tab + 1);  // optional third field: the input order
      if (tab2 != std::string::npos) {
        one.input_names = split(line.substr(tab2 + 1));
        line = line.substr(0, tab2);
      }
      auto t0 = std::chrono::steady_clock::now();
      auto outputs = named(model.meta, model.run(ordered_inputs(one, model.meta, read_safetensors(one.inputs))));
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      write_safetensors(line.substr(tab + 1), outputs);
      emit("{\"ok\":true,\"seconds\":" + number(s) + ",\"outputs\":" + outputs_json(outputs) + "}\n");
    } catch (const c10::Error& e) {
      emit("{\"ok\":false,\"error\":" + quote(std::string("libtorch: ") + e.what_without_backtrace()) + "}\n");
    } catch (const std::exception& e) {
      emit("{\"ok\":false,\"error\":" + quote(e.what()) + "}\n");
    }
  }
  return 0;
}

int run_main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.torch_threads > 0) at::set_num_threads(a.torch_threads);
  c10::InferenceMode guard;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  std::unique_ptr<Model> model;
  if (a.format == "torchscript") model = std::make_unique<ScriptModel>(a.model);
  else model = std::make_unique<AotiModel>(a.model, size_t(a.threads));
  double load_s = std::chrono::duration<double>(clock::now() - t0).count();
  if (a.serve) return serve(*model, a, load_s);
  std::vector<at::Tensor> inputs = ordered_inputs(a, model->meta, read_safetensors(a.inputs));
  auto t1 = clock::now();
  auto outputs = named(model->meta, model->run(inputs));
  double first_s = std::chrono::duration<double>(clock::now() - t1).count();
  if (!a.outputs.empty()) write_safetensors(a.outputs, outputs);
  std::string doc = "{\"schema\":\"" + std::string(kSchema) + "\",\"format\":" + quote(a.format) +
                    ",\"pid\":" + std::to_string(getpid()) + ",\"libpython_mapped\":" +
                    (libpython_mapped() ? "true" : "false") + ",\"torch_threads\":" +
                    std::to_string(at::get_num_threads()) + ",\"load_seconds\":" + number(load_s) +
                    ",\"first_call_seconds\":" + number(first_s) + ",\"outputs\":" + outputs_json(outputs);
  if (a.seconds > 0 || a.iterations > 0) {
    Timing t = time_requests(*model, inputs, a);
    doc += ",\"timing\":{\"threads\":" + std::to_string(a.threads) + ",\"warmup\":" + std::to_string(a.warmup) +
           ",\"wall_seconds\":" + number(t.wall) + ",\"requests\":" + std::to_string(t.latencies.size()) +
           ",\"latencies\":[";
    for (size_t k = 0; k < t.latencies.size(); ++k) doc += (k ? "," : "") + number(t.latencies[k]);
    doc += "]}";
  }
  doc += "}\n";
  std::fwrite(doc.data(), 1, doc.size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "libtorch: %s\n", e.what_without_backtrace());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  }
}
