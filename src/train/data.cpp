// Training data: the built-in synthetic tasks, memory-mapped token files, and
// `huginn data tokenize`.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/safetensors.h"
#include "huginn/tasks.h"
#include "huginn/tokenizer.h"
#include "huginn/train.h"

namespace huginn {
namespace fs = std::filesystem;

namespace {
uint64_t mix(uint64_t x) { return splitmix64(x); }
struct Rng {
  uint64_t s;
  uint64_t next() { return s = mix(s); }
  int below(int n) { return (int)(next() % (uint64_t)n); }
};
constexpr char kMagic[8] = {'H', 'G', 'N', 'T', 'O', 'K', '0', '1'};
constexpr size_t kHeader = 24;
}  // namespace

// ------------------------------------------------------------- synthetic --

SyntheticSource::SyntheticSource(Task task, int len, int digits, uint64_t seed, bool validation)
    : task_(task), len_(len), digits_(digits), seed_(seed), val_(validation) {
  if (len < 1 || len > 4096) fail("synthetic task: len must be in 1..4096, got ", len);
  if (digits < 2 || digits > 1000000) fail("synthetic task: digits must be in 2..1000000, got ", digits);
}

void SyntheticSource::get(uint64_t index, int T, int* ids, int* labels) const {
  Rng rng{mix(seed_ * 0x100000001B3ull + (val_ ? 0xA5A5A5A5ull : 0)) ^ mix(index)};
  std::vector<int> w;
  std::vector<char> target;  // target[i]: w[i] is scored
  w.reserve(T + 2 * len_ + 4);
  while ((int)w.size() < T + 1) {
    std::vector<int> x(len_);
    for (auto& v : x) v = rng.below(digits_);
    std::vector<int> y;
    switch (task_) {
      case Task::Copy: y = x; break;
      case Task::Reverse: y.assign(x.rbegin(), x.rend()); break;
      case Task::ModSum: y = {std::accumulate(x.begin(), x.end(), 0) % digits_}; break;
    }
    w.push_back(1), target.push_back(0);
    for (int v : x) w.push_back(4 + v), target.push_back(0);
    w.push_back(2), target.push_back(0);
    for (int v : y) w.push_back(4 + v), target.push_back(1);
    w.push_back(3), target.push_back(1);
  }
  for (int t = 0; t < T; ++t) {
    ids[t] = w[t];
    labels[t] = target[t + 1] ? w[t + 1] : kIgnoreLabel;
  }
}

std::string SyntheticSource::describe() const {
  const char* n = task_ == Task::Copy ? "copy" : task_ == Task::Reverse ? "reverse" : "modsum";
  return str("synthetic:", n, ",len=", len_, ",digits=", digits_, ",seed=", seed_, val_ ? " (validation)" : "");
}

// ------------------------------------------------------------ token file --

struct TokenFileSource::Map {
  std::unique_ptr<MappedFile> f;
};

TokenFileSource::TokenFileSource(const std::string& path) : map_(new Map), path_(path) {
  map_->f = std::make_unique<MappedFile>(path);
  const uint8_t* p = map_->f->data();
  const size_t sz = map_->f->size();
  if (sz < kHeader || std::memcmp(p, kMagic, 8) != 0)
    fail(path, ": not a huginn token file (expected the HGNTOK01 header written by `huginn data tokenize`)");
  uint32_t width, eos;
  uint64_t n;
  std::memcpy(&width, p + 8, 4);
  std::memcpy(&eos, p + 12, 4);
  std::memcpy(&n, p + 16, 8);
  if (width != 2 && width != 4) fail(path, ": bad token width ", width);
  if (kHeader + n * width != sz)
    fail(path, ": header says ", n, " tokens of ", width, " bytes but the file has ", sz - kHeader, " data bytes");
  n_ = n;
  width_ = (int)width;
}
TokenFileSource::~TokenFileSource() = default;

uint32_t TokenFileSource::max_id() const {
  const uint8_t* p = map_->f->data() + kHeader;
  uint32_t m = 0;
  for (uint64_t i = 0; i < n_; ++i) {
    uint32_t v = 0;
    std::memcpy(&v, p + i * width_, width_);
    m = std::max(m, v);
  }
  return m;
}

void TokenFileSource::get(uint64_t index, int T, int* ids, int* labels) const {
  if (n_ < (uint64_t)T + 1) fail(path_, ": ", n_, " tokens, too few for one sequence of ", T, " (+1) tokens");
  const uint64_t nwin = (n_ - 1) / T;
  const uint64_t epoch = index / nwin, j = index % nwin;
  // A bijection of the windows per epoch: j -> (a*j + b) mod nwin, gcd(a, nwin) = 1.
  uint64_t a = nwin > 1 ? mix(epoch * 2 + 1) % nwin : 1, b = nwin > 1 ? mix(epoch * 2 + 2) % nwin : 0;
  if (a == 0) a = 1;
  while (std::gcd(a, nwin) != 1) a = (a + 1) % nwin == 0 ? 1 : a + 1;
  const uint64_t w = (uint64_t)(((unsigned __int128)a * j + b) % nwin);
  const uint8_t* p = map_->f->data() + kHeader + w * (uint64_t)T * width_;
  auto at = [&](int i) {
    uint32_t v = 0;
    std::memcpy(&v, p + (size_t)i * width_, width_);
    return (int)v;
  };
  for (int t = 0; t < T; ++t) {
    ids[t] = at(t);
    labels[t] = at(t + 1);
  }
}

std::string TokenFileSource::describe() const { return str("tokens:", path_, " (", n_, " tokens)"); }

void write_token_file(const std::string& path, const std::vector<uint32_t>& ids, int eos) {
  uint32_t mx = 0;
  for (uint32_t v : ids) mx = std::max(mx, v);
  const uint32_t width = mx < 65536 ? 2 : 4;
  std::string buf(kHeader + ids.size() * width, '\0');
  std::memcpy(buf.data(), kMagic, 8);
  const uint32_t e = (uint32_t)eos;
  const uint64_t n = ids.size();
  std::memcpy(buf.data() + 8, &width, 4);
  std::memcpy(buf.data() + 12, &e, 4);
  std::memcpy(buf.data() + 16, &n, 8);
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(buf.data() + kHeader + i * width, &ids[i], width);
  write_file_atomic(path, buf);
}

// -------------------------------------------------------------- data spec --

DataSources open_data(const std::string& spec, int vocab_size) {
  DataSources ds;
  const auto colon = spec.find(':');
  if (colon == std::string::npos) fail("--data '", spec, "': expected synthetic:TASK[,k=v...], tokens:PREFIX or tasks:MIX");
  const std::string kind = spec.substr(0, colon), rest = spec.substr(colon + 1);
  if (kind == "synthetic") {
    std::stringstream ss(rest);
    std::string item, task;
    int len = 8, digits = 10;
    uint64_t seed = 1234;
    bool first = true;
    while (std::getline(ss, item, ',')) {
      if (first) {
        task = item;
        first = false;
        continue;
      }
      const auto eq = item.find('=');
      if (eq == std::string::npos) fail("--data '", spec, "': expected key=value, got '", item, "'");
      const std::string k = item.substr(0, eq), v = item.substr(eq + 1);
      if (k != "len" && k != "digits" && k != "seed")
        fail("--data '", spec, "': unknown key '", k, "' (len, digits, seed)");
      unsigned long long x = 0;
      if (!parse_uint(v, x) || (k != "seed" && x > INT32_MAX))
        fail("--data '", spec, "': bad value for ", k, ": '", v, "'");
      if (k == "len") len = (int)x;
      else if (k == "digits") digits = (int)x;
      else seed = (uint64_t)x;
    }
    SyntheticSource::Task t;
    if (task == "copy") t = SyntheticSource::Task::Copy;
    else if (task == "reverse") t = SyntheticSource::Task::Reverse;
    else if (task == "modsum") t = SyntheticSource::Task::ModSum;
    else fail("--data '", spec, "': unknown synthetic task '", task, "' (copy, reverse, modsum)");
    auto tr = std::make_shared<SyntheticSource>(t, len, digits, seed, false);
    if (tr->vocab_needed() > vocab_size)
      fail("--data '", spec, "': the task needs ", tr->vocab_needed(), " token ids, the model has ", vocab_size);
    ds.train = tr;
    ds.val = std::make_shared<SyntheticSource>(t, len, digits, seed, true);
    return ds;
  }
  if (kind == "tokens") {
    auto open = [&](const std::string& p) {
      auto s = std::make_shared<TokenFileSource>(p);
      if (s->max_id() >= (uint32_t)vocab_size)
        fail(p, ": token id ", s->max_id(), " is outside the model's vocabulary of ", vocab_size);
      return s;
    };
    if (fs::is_regular_file(rest)) {
      ds.train = open(rest);
      return ds;
    }
    if (!fs::is_regular_file(rest + ".train.bin"))
      fail("--data '", spec, "': neither ", rest, " nor ", rest, ".train.bin exists");
    ds.train = open(rest + ".train.bin");
    if (fs::is_regular_file(rest + ".val.bin")) ds.val = open(rest + ".val.bin");
    return ds;
  }
  if (kind == "tasks") {
    tasks::TaskMix mix = tasks::parse_task_mix(rest);
    mix.validate();
    if (vocab_size < tasks::kCharVocabSize)
      fail("--data '", spec, "': the task vocabulary has ", tasks::kCharVocabSize, " ids, the model has ", vocab_size);
    ds.train = std::make_shared<tasks::TaskSequenceSource>(mix, tasks::Split::Train);
    ds.val = std::make_shared<tasks::TaskSequenceSource>(mix, tasks::Split::Validation);
    ds.write_model_files = [mix](const std::string& dir) {
      tasks::write_tokenizer_files(dir);
      tasks::write_task_manifest(dir, mix);
    };
    return ds;
  }
  fail("--data '", spec, "': unknown kind '", kind, "' (synthetic, tokens or tasks)");
}

// --------------------------------------------------------------- tokenize --

namespace {
// One document's text to ids with the model's tokenizer (no special tokens:
// documents are separated by eos, which defaults to the tokenizer's
// end-of-text token when --eos is not given).
std::vector<uint32_t> tokenize_text(const std::string& tokenizer_path, const std::string& text, int* eos) {
  if (tokenizer_path.empty())
    fail("text input needs a tokenizer: give --tokenizer (a tokenizer.json or a model directory)");
  static std::string loaded_path;
  static std::optional<Tokenizer> tok;
  if (!tok || loaded_path != tokenizer_path) {
    tok = fs::is_directory(tokenizer_path) ? load_model_tokenizer(tokenizer_path) : Tokenizer::from_file(tokenizer_path);
    loaded_path = tokenizer_path;
  }
  if (*eos < 0) {
    for (const char* name : {"<|end_text|>", "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"})
      if ((*eos = tok->token_to_id(name)) >= 0) break;
    if (*eos < 0) fail(tokenizer_path, ": no end-of-text token found; give --eos ID");
  }
  const std::vector<int> ids = tok->encode(text, /*add_special=*/false);
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

std::vector<uint32_t> ids_from_json(const nlohmann::json& a, const std::string& where) {
  std::vector<uint32_t> out;
  for (auto& v : a) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0x7fffffff)
      fail(where, ": token ids must be integers in [0, 2^31), got ", json_brief(v));
    out.push_back((uint32_t)v.get<int64_t>());
  }
  return out;
}
}  // namespace

TokenizeStats tokenize_files(const TokenizeOptions& o) {
  if (o.inputs.empty()) fail("data tokenize: no input files");
  if (o.out_prefix.empty()) fail("data tokenize: --out is required");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) fail("--val-fraction must be in [0, 1), got ", o.val_fraction);
  int eos = o.eos;
  std::vector<uint32_t> train, val;
  TokenizeStats st;
  uint64_t doc = 0;
  auto add_doc = [&](std::vector<uint32_t> ids) {
    if (ids.empty()) return;
    if (eos < 0) fail("data tokenize: --eos is required for pre-tokenized input");
    const bool is_val = (double)(mix(o.seed * 31 + doc++) >> 11) / 9007199254740992.0 < o.val_fraction;
    auto& dst = is_val ? val : train;
    dst.insert(dst.end(), ids.begin(), ids.end());
    dst.push_back((uint32_t)eos);
    (is_val ? st.docs_val : st.docs_train)++;
  };
  for (const auto& path : o.inputs) {
    std::ifstream f(path);
    if (!f) fail(path, ": cannot open");
    const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
    if (jsonl) {
      std::string line;
      int lineno = 0;
      while (std::getline(f, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = str(path, ":", lineno);
        const nlohmann::json j = parse_json(line, where);
        if (j.is_array()) add_doc(ids_from_json(j, where));
        else if (j.is_object() && j.contains("ids")) add_doc(ids_from_json(j["ids"], where));
        else if (j.is_object() && j.contains("input_ids")) add_doc(ids_from_json(j["input_ids"], where));
        else if (j.is_object() && j.contains("text") && j["text"].is_string())
          add_doc(tokenize_text(o.tokenizer, j["text"].get<std::string>(), &eos));
        else fail(where, ": expected an id array, {\"ids\": [...]} or {\"text\": \"...\"}");
      }
    } else {
      // Plain text: documents separated by blank lines.
      std::string line, docu;
      auto flush = [&]() {
        if (!docu.empty()) add_doc(tokenize_text(o.tokenizer, docu, &eos));
        docu.clear();
      };
      while (std::getline(f, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) flush();
        else docu += (docu.empty() ? "" : "\n") + line;
      }
      flush();
    }
  }
  if (train.empty()) fail("data tokenize: no training documents (", st.docs_val, " went to validation)");
  st.tokens_train = train.size();
  st.tokens_val = val.size();
  write_token_file(o.out_prefix + ".train.bin", train, eos);
  if (!val.empty()) write_token_file(o.out_prefix + ".val.bin", val, eos);
  return st;
}

}  // namespace huginn
