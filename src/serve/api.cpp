// `huginn serve`'s request/response logic (see include/huginn/server_api.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>

#include "huginn/chat.h"
#include "huginn/check.h"
#include "huginn/exit_criteria.h"
#include "huginn/json.h"
#include "huginn/kv_cache.h"
#include "huginn/server_api.h"
#include "tensor/kernels.h"

namespace huginn::serve {
using json = nlohmann::json;

json error_json(const std::string& message, const std::string& type) {
  return json{{"error", {{"message", message}, {"type", type}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
// Error messages describe a request's value without serialising it.
std::string brief(const json& j) { return json_brief(j); }

namespace {

[[noreturn]] void bad(const std::string& msg) { throw ApiError(400, msg); }

// ---- typed field access: absent or null -> nullopt; a wrong type -> 400 ----
std::optional<long long> get_int(const json& j, const char* key, long long lo, long long hi) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) bad(str("'", key, "' must be an integer, got ", brief(*it)));
  long long v;
  if (it->is_number_unsigned()) {
    const auto u = it->get<unsigned long long>();
    if (u > (unsigned long long)hi) bad(str("'", key, "' must be in [", lo, ", ", hi, "], got ", u));
    v = (long long)u;
  } else {
    v = it->get<long long>();
  }
  if (v < lo || v > hi) bad(str("'", key, "' must be in [", lo, ", ", hi, "], got ", v));
  return v;
}

std::optional<double> get_number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) bad(str("'", key, "' must be a number, got ", brief(*it)));
  return it->get<double>();
}

std::optional<bool> get_bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) bad(str("'", key, "' must be true or false, got ", brief(*it)));
  return it->get<bool>();
}

std::optional<std::string> get_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad(str("'", key, "' must be a string, got ", brief(*it)));
  return it->get<std::string>();
}

std::string shorten(const std::string& s, size_t n = 80) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

// The response text of generated tokens, built token by token: the stop
// token's text is left out, and the text ends before the first stop string.
// Text that could still become part of a stop string is held back, so a
// stream never sends what the whole response would not contain.
class OutputText {
 public:
  OutputText(const std::optional<Tokenizer>& tok, const std::vector<int>& stop_ids,
             const std::vector<std::string>& stop_strings)
      : stop_ids_(stop_ids), stop_strings_(stop_strings) {
    if (tok) {
      tok_ = &*tok;
      stream_.emplace(*tok, /*skip_special=*/false);
    }
    for (auto& s : stop_strings_) hold_ = std::max(hold_, s.size() - 1);
  }
  // Text that became final with this token.
  std::string push(int id) {
    if (stopped_) return "";
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end()) return "";
    if (stream_) {
      // a model's padded vocabulary can hold ids its tokenizer lacks: they add no text
      if (tok_->id_to_token(id).empty()) return "";
      return add(stream_->push(id));
    }
    std::string piece = (first_ ? "" : " ") + std::to_string(id);
    first_ = false;
    return add(piece);
  }
  // Whatever is left at the end.
  std::string finish() {
    std::string out;
    if (!stopped_ && stream_) out = add(stream_->flush());
    if (!stopped_) out += pending_;
    pending_.clear();
    stopped_ = true;
    return out;
  }

 private:
  std::string add(const std::string& piece) {
    pending_ += piece;
    size_t cut = std::string::npos;
    for (auto& s : stop_strings_) cut = std::min(cut, pending_.find(s));
    if (cut != std::string::npos) {
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      stopped_ = true;
      return out;
    }
    if (pending_.size() <= hold_) return "";
    size_t n = pending_.size() - hold_;
    while (n > 0 && (static_cast<unsigned char>(pending_[n]) & 0xC0) == 0x80) --n;  // not inside a UTF-8 character
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }

  const std::vector<int>& stop_ids_;
  const std::vector<std::string>& stop_strings_;
  const Tokenizer* tok_ = nullptr;
  std::optional<TextStream> stream_;
  size_t hold_ = 0;
  std::string pending_;
  bool first_ = true, stopped_ = false;
};

std::string new_id(bool chat) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = std::random_device{}();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)splitmix64(base + counter++));
  return std::string(chat ? "chatcmpl-" : "cmpl-") + buf;
}

const char* finish_reason(const std::string& stop_reason) {
  return stop_reason == "stop_token" || stop_reason == "stop_string" ? "stop" : "length";
}

}  // namespace

Api::Api(const Model& model, std::optional<Tokenizer> tokenizer, std::vector<int> stop_ids, std::string name,
         ServerConfig config)
    : m_(model),
      tok_(std::move(tokenizer)),
      stop_ids_(std::move(stop_ids)),
      name_(std::move(name)),
      cfg_(std::move(config)) {
  if (stop_ids_.empty()) stop_ids_ = default_stop_tokens(model.config());  // the family's (Ouro: eos)
  if (cfg_.max_steps < 1) fail("the largest steps a request may ask for must be >= 1, got ", cfg_.max_steps);
  if (cfg_.steps == 0 || cfg_.steps < -1) fail("--steps must be >= 1, got ", cfg_.steps);
  // The default depth (a config's mean_recurrence unless --steps) is capped:
  // a config with mean_recurrence 2^30 must not make every request run for ever.
  if (cfg_.steps < 0)
    check_recurrence(default_steps(), "the model's mean_recurrence (the default depth; set --steps)",
                     std::max<int64_t>(kDefaultMaxRecurrence, cfg_.max_steps));
  if (default_steps() > cfg_.max_steps) cfg_.max_steps = default_steps();
  // The server's defaults as one spec, parsed once; a request overrides its fields.
  defaults_.steps = default_steps();
  defaults_.exit = DecodeSpec::parse_exit(cfg_.exit);
  defaults_.cache = DecodeSpec::parse_cache(cfg_.cache);
  defaults_.stop_tokens = stop_ids_;
}

Api::Api(const LoadedModel& lm, ServerConfig config)
    : Api(lm.model(), lm.tokenizer() ? std::optional<Tokenizer>(*lm.tokenizer()) : std::nullopt, lm.stop_ids(),
          lm.name(), std::move(config)) {}

Api Api::for_model_dir(const Model& model, const std::string& dir, ServerConfig config) {
  // The directory's files without its weights (the caller has the model).
  const LoadedModel files = load_model(dir, LoadOptions{.weights = false});
  std::string name = model.config().name;
  if (name.empty() || name == "huginn") name = files.name();
  return Api(model, files.tokenizer() ? std::optional<Tokenizer>(*files.tokenizer()) : std::nullopt, files.stop_ids(),
             name, std::move(config));
}

int Api::default_steps() const { return cfg_.steps > 0 ? cfg_.steps : std::max(1, m_.config().mean_recurrence); }

json Api::health() const { return json{{"status", "ok"}}; }

json Api::models() const {
  const ModelConfig& c = m_.config();
  bool chat = false;
  if (tok_) {
    chat = true;
    for (const char* t :
         {chat_tokens::kBeginText, chat_tokens::kBeginHeader, chat_tokens::kEndHeader, chat_tokens::kEndTurn})
      chat = chat && tok_->token_to_id(t) >= 0;
  }
  json info = {{"n_embd", c.n_embd},
               {"n_heads", c.n_heads},
               {"vocab_size", c.vocab_size},
               {"block_size", c.block_size},
               {"n_prelude", c.n_prelude},
               {"n_core", c.n_core},
               {"n_coda", c.n_coda},
               {"mean_recurrence", c.mean_recurrence},
               {"parameters", c.params_total()},
               {"tokenizer", tok_.has_value()},
               {"chat", chat},
               {"stop_tokens", stop_ids_},
               {"defaults", {{"steps", default_steps()}, {"exit", cfg_.exit}, {"cache", cfg_.cache}}},
               {"max_steps", cfg_.max_steps}};
  return json{
      {"object", "list"},
      {"data", json::array({json{
                   {"id", name_}, {"object", "model"}, {"created", 0}, {"owned_by", "huginn"}, {"huginn", info}}})}};
}

ApiRequest Api::parse(std::string_view body, bool chat) const {
  json j;
  try {
    j = parse_json(body, "the request body");
  } catch (const Error& e) {
    bad(e.what());
  }
  if (!j.is_object()) bad("the request body must be a JSON object");
  static const std::set<std::string> common = {"model",
                                               "max_tokens",
                                               "temperature",
                                               "top_p",
                                               "top_k",
                                               "min_p",
                                               "repetition_penalty",
                                               "seed",
                                               "stop",
                                               "stream",
                                               "n",
                                               "steps",
                                               "exit",
                                               "min_steps",
                                               "cache",
                                               "continuous",
                                               "logprobs",
                                               "stream_options",
                                               "max_completion_tokens",
                                               "user"};
  static const std::set<std::string> chat_only = {"top_logprobs"};
  const char* prompt_key = chat ? "messages" : "prompt";
  for (auto& [k, v] : j.items())
    if (k != prompt_key && !common.count(k) && !(chat && chat_only.count(k)))
      bad(str("unknown field '", shorten(k), "'", chat ? " in a chat completion request" : " in a completion request"));

  const ModelConfig& c = m_.config();
  ApiRequest r;
  r.chat = chat;
  if (auto m = j.find("model"); m != j.end() && !m->is_null() && !m->is_string())
    bad("'model' must be a string, got " + brief(*m));
  r.n = (int)get_int(j, "n", 1, 16).value_or(1);
  r.stream = get_bool(j, "stream").value_or(false);
  if (auto so = j.find("stream_options"); so != j.end() && !so->is_null()) {
    if (!so->is_object()) bad("'stream_options' must be an object, got " + brief(*so));
    if (!r.stream) bad("'stream_options' is only allowed with \"stream\": true");
    for (auto& [k, v] : so->items())
      if (k != "include_usage") bad(str("unknown field '", shorten(k), "' in 'stream_options'"));
    r.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  if (auto u = j.find("user"); u != j.end() && !u->is_null() && !u->is_string())
    bad("'user' must be a string, got " + brief(*u));
  if (chat) {
    const bool want = get_bool(j, "logprobs").value_or(false);
    const auto top = get_int(j, "top_logprobs", 0, 20);
    if (top && !want) bad("'top_logprobs' needs \"logprobs\": true");
    if (want) r.logprobs = (int)top.value_or(0);
  } else if (auto lp = get_int(j, "logprobs", 0, 5)) {
    r.logprobs = (int)*lp;
  }

  // ---- the prompt ----
  auto pit = j.find(prompt_key);
  if (pit == j.end() || pit->is_null()) bad(str("missing field '", prompt_key, "'"));
  if (!chat) {
    if (pit->is_string()) {
      const std::string text = pit->get<std::string>();
      if (text.empty()) bad("'prompt' is empty");
      if (!tok_) bad("this model has no tokenizer.json: give 'prompt' as an array of token ids");
      try {
        r.prompt = tok_->encode(text, /*add_special=*/true);
      } catch (const Error& e) {
        bad(str("'prompt' cannot be tokenized: ", e.what()));
      }
    } else if (pit->is_array()) {
      if (pit->empty()) bad("'prompt' is empty");
      for (size_t i = 0; i < pit->size(); ++i) {
        const json& x = (*pit)[i];
        if (!x.is_number_integer())
          bad(str("'prompt' must be a string or an array of token ids; entry ", i, " is ", brief(x)));
        const bool neg = x.is_number_integer() && !x.is_number_unsigned() && x.get<long long>() < 0;
        if (neg || x.get<unsigned long long>() >= (unsigned long long)c.vocab_size)
          bad(str("'prompt' token id ", dump(x), " (entry ", i, ") is outside the vocabulary [0, ", c.vocab_size, ")"));
        r.prompt.push_back(x.get<int>());
      }
    } else {
      bad("'prompt' must be a string or an array of token ids, got " + brief(*pit));
    }
  } else {
    if (!pit->is_array()) bad("'messages' must be an array of {\"role\", \"content\"} objects");
    if (pit->empty()) bad("'messages' is empty");
    std::vector<ChatMessage> msgs;
    for (size_t i = 0; i < pit->size(); ++i) {
      const json& x = (*pit)[i];
      if (!x.is_object()) bad(str("messages[", i, "] must be an object with 'role' and 'content'"));
      for (auto& [k, v] : x.items())
        if (k != "role" && k != "content") bad(str("unknown field '", shorten(k), "' in messages[", i, "]"));
      auto role = x.find("role"), content = x.find("content");
      if (role == x.end() || !role->is_string() || role->get<std::string>().empty())
        bad(str("messages[", i, "].role must be a non-empty string"));
      if (content == x.end() || !content->is_string()) bad(str("messages[", i, "].content must be a string"));
      msgs.push_back({role->get<std::string>(), content->get<std::string>()});
    }
    if (!tok_) bad("this model has no tokenizer.json, so no chat format: use /v1/completions with token ids");
    try {
      r.prompt = encode_chat(*tok_, msgs, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      bad(str("this model cannot chat: ", e.what()));
    }
  }
  if (r.prompt.empty()) bad("the prompt encodes to no tokens");
  for (int id : r.prompt)
    if (id < 0 || id >= c.vocab_size)
      bad(str("the prompt holds token id ", id, ", outside the model's vocabulary [0, ", c.vocab_size, ")"));
  const int P = (int)r.prompt.size();
  if (P >= c.block_size)
    bad(str("the prompt is ", P, " tokens; the model's context is ", c.block_size,
            " tokens, with room for at least one generated token"));

  // ---- generation options ----
  GenerateOptions& g = r.options;
  static_cast<DecodeSpec&>(g) = defaults_;
  const int room = c.block_size - P;
  auto mt = get_int(j, "max_tokens", 1, 1 << 30);
  if (auto mct = get_int(j, "max_completion_tokens", 1, 1 << 30)) {
    if (mt && *mt != *mct) bad("'max_tokens' and 'max_completion_tokens' differ; give one");
    mt = mct;
  }
  if (mt) {
    if (*mt > room)
      bad(str("the prompt (", P, " tokens) plus max_tokens (", *mt, ") exceeds the model's context of ", c.block_size,
              " tokens"));
    g.max_new_tokens = (int)*mt;
  } else {
    g.max_new_tokens = chat ? room : std::min(cfg_.default_max_tokens, room);
  }
  g.steps = (int)get_int(j, "steps", 1, cfg_.max_steps).value_or(defaults_.steps);
  try {
    if (auto e = get_string(j, "exit")) g.exit = DecodeSpec::parse_exit(*e);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    bad(str("'exit': ", e.what()));
  }
  g.min_steps = (int)get_int(j, "min_steps", 0, g.steps).value_or(0);
  try {
    if (auto cs = get_string(j, "cache")) g.cache = DecodeSpec::parse_cache(*cs);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    bad(str("'cache': ", e.what()));
  }
  g.continuous = get_bool(j, "continuous").value_or(false);

  SamplingOptions& s = g.sampling;
  if (auto t = get_number(j, "temperature")) {
    if (!(*t >= 0 && *t <= 100)) bad(str("'temperature' must be in [0, 100] (0 = greedy), got ", *t));
    s.temperature = (float)*t;
  }
  if (auto p = get_number(j, "top_p")) {
    if (!(*p > 0 && *p <= 1)) bad(str("'top_p' must be in (0, 1], got ", *p));
    s.top_p = (float)*p;
  }
  s.top_k = (int)get_int(j, "top_k", 0, 1 << 30).value_or(0);
  if (auto p = get_number(j, "min_p")) {
    if (!(*p >= 0 && *p <= 1)) bad(str("'min_p' must be in [0, 1], got ", *p));
    s.min_p = (float)*p;
  }
  if (auto p = get_number(j, "repetition_penalty")) {
    if (!(*p > 0 && *p <= 100)) bad(str("'repetition_penalty' must be in (0, 100] (1 = off), got ", *p));
    s.repetition_penalty = (float)*p;
  }
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<long long>() < 0))
      bad("'seed' must be a whole number >= 0, got " + brief(*it));
    s.seed = it->get<uint64_t>();
    g.seed = s.seed;  // as the CLI: also seeds a random initial state
  }

  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      g.stop_strings.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > 16) bad(str("'stop' holds ", it->size(), " strings; at most 16"));
      for (auto& x : *it) {
        if (!x.is_string()) bad("'stop' must be a string or an array of strings, got " + brief(*it));
        g.stop_strings.push_back(x.get<std::string>());
      }
    } else {
      bad("'stop' must be a string or an array of strings, got " + brief(*it));
    }
    for (auto& x : g.stop_strings)
      if (x.empty()) bad("'stop' holds an empty string");
    if (!g.stop_strings.empty()) {
      if (!tok_) bad("'stop' strings need the model's tokenizer.json, and this model has none");
      Tokenizer tok = *tok_;
      g.token_text = [tok](int id) { return tok.id_to_token(id).empty() ? std::string() : tok.decode({id}); };
    }
  }
  try {
    g.validate(c);
  } catch (const Error& e) {
    bad(e.what());
  }
  return r;
}

std::string Api::text_of(const ApiRequest& r, const std::vector<int>& tokens) const {
  OutputText out(tok_, r.options.stop_tokens, r.options.stop_strings);
  std::string text;
  for (int t : tokens) text += out.push(t);
  return text + out.finish();
}

GenerateOptions ApiRequest::choice_options(int i) const {
  GenerateOptions g = options;
  g.sampling.seed += (uint64_t)i;
  g.seed += (uint64_t)i;
  return g;
}

std::string Api::token_text(int id) const {
  if (!tok_) return std::to_string(id);
  if (tok_->id_to_token(id).empty()) return std::string();
  return tok_->decode({id});
}

json Api::tokenize(std::string_view body) const {
  json j;
  try {
    j = parse_json(body, "the request body");
  } catch (const Error& e) {
    bad(e.what());
  }
  if (!j.is_object()) bad("the request body must be a JSON object");
  for (auto& [k, v] : j.items())
    if (k != "content" && k != "add_special") bad(str("unknown field '", shorten(k), "' in a tokenize request"));
  const auto text = get_string(j, "content");
  if (!text) bad("missing field 'content'");
  if (!tok_) bad("this model has no tokenizer.json");
  const bool special = get_bool(j, "add_special").value_or(false);
  try {
    return json{{"tokens", tok_->encode(*text, special)}};
  } catch (const Error& e) {
    bad(str("'content' cannot be tokenized: ", e.what()));
  }
}

json Api::detokenize(std::string_view body) const {
  json j;
  try {
    j = parse_json(body, "the request body");
  } catch (const Error& e) {
    bad(e.what());
  }
  if (!j.is_object()) bad("the request body must be a JSON object");
  for (auto& [k, v] : j.items())
    if (k != "tokens") bad(str("unknown field '", shorten(k), "' in a detokenize request"));
  auto it = j.find("tokens");
  if (it == j.end() || !it->is_array()) bad("'tokens' must be an array of token ids");
  std::vector<int> ids;
  const int V = m_.config().vocab_size;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& x = (*it)[i];
    if (!x.is_number_integer() || (!x.is_number_unsigned() && x.get<long long>() < 0) ||
        x.get<unsigned long long>() >= (unsigned long long)V)
      bad(str("'tokens' entry ", i, " (", brief(x), ") is not a token id in [0, ", V, ")"));
    ids.push_back(x.get<int>());
  }
  if (!tok_) {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
    return json{{"content", out}};
  }
  return json{{"content", tok_->decode(ids)}};
}

struct Reply::Choice {
  OutputText out;
  std::string text;  // sent so far
  bool first = true;
  size_t text_offset = 0;  // completions logprobs: the offset of the next token's text
  Choice(const Api& api, const ApiRequest& r) : out(api.tok_, r.options.stop_tokens, r.options.stop_strings) {}
};

Reply::Reply(const Api& api, const ApiRequest& r)
    : api_(api), r_(r), id_(new_id(r.chat)), created_((long long)std::time(nullptr)) {
  for (int i = 0; i < r.n; ++i) choices_.push_back(std::make_unique<Choice>(api, r));
}
Reply::~Reply() = default;

json Reply::chunk(int i, const std::string& piece, const json& finish) {
  Choice& c = *choices_[i];
  json choice = {{"index", i}, {"finish_reason", finish}};
  if (r_.chat) {
    json delta = {{"content", piece}};
    if (c.first) delta["role"] = "assistant";
    choice["delta"] = delta;
  } else {
    choice["text"] = piece;
  }
  c.first = false;
  return json{{"id", id_},
              {"object", r_.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", api_.name_},
              {"choices", json::array({choice})}};
}

json Reply::logprobs_of(Choice& c, const std::vector<JobToken>& toks, size_t offset) {
  if (r_.chat) {
    json content = json::array();
    auto entry = [&](int id, float lp) {
      const std::string t = api_.token_text(id);
      json bytes = json::array();
      for (unsigned char ch : t) bytes.push_back((int)ch);
      return json{{"token", t}, {"logprob", lp}, {"bytes", bytes}};
    };
    for (auto& t : toks) {
      json e = entry(t.token, t.logprob);
      json top = json::array();
      for (auto& [id, lp] : t.top) top.push_back(entry(id, lp));
      e["top_logprobs"] = top;
      content.push_back(e);
    }
    return json{{"content", content}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  size_t off = offset;
  for (auto& t : toks) {
    const std::string s = api_.token_text(t.token);
    tokens.push_back(s);
    lps.push_back(t.logprob);
    json top = json::object();
    for (auto& [id, lp] : t.top) top[api_.token_text(id)] = lp;
    tops.push_back(top);
    offs.push_back(off);
    off += s.size();
  }
  c.text_offset = off;
  return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json Reply::token_chunk(int i, const JobToken& t) {
  Choice& c = *choices_[i];
  const std::string piece = c.out.push(t.token);
  c.text += piece;
  json j = chunk(i, piece, nullptr);
  if (r_.logprobs >= 0) j["choices"][0]["logprobs"] = logprobs_of(c, {t}, c.text_offset);
  j["huginn"] = {{"token", t.token}, {"steps", t.steps}};
  return j;
}

json Reply::huginn_of(const SequenceResult& res) const {
  double mean = 0;
  for (int s : res.steps) mean += s;
  if (!res.steps.empty()) mean /= (double)res.steps.size();
  return json{{"tokens", res.tokens},
              {"steps", res.steps},
              {"mean_steps", mean},
              {"core_iterations", res.core_iterations},
              {"kv_bytes", res.kv_bytes},
              {"stop_reason", res.stop_reason},
              {"max_steps", r_.options.steps},
              {"exit", r_.options.exit_str()},
              {"cache", r_.options.cache}};
}

json Reply::usage_of(const std::vector<SequenceResult>& res) const {
  const int P = (int)r_.prompt.size();
  int N = 0;
  for (auto& x : res) N += (int)x.tokens.size();
  return json{{"prompt_tokens", P}, {"completion_tokens", N}, {"total_tokens", P + N}};
}

json Reply::final_chunk(int i, const SequenceResult& res) {
  Choice& c = *choices_[i];
  const std::string tail = c.out.finish();
  c.text += tail;
  json j = chunk(i, tail, finish_reason(res.stop_reason));
  j["huginn"] = huginn_of(res);
  return j;
}

json Reply::usage_chunk(const std::vector<SequenceResult>& res) const {
  return json{{"id", id_},
              {"object", r_.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", api_.name_},
              {"choices", json::array()},
              {"usage", usage_of(res)}};
}

json Reply::whole(const std::vector<SequenceResult>& res, const std::vector<std::vector<JobToken>>& tokens) {
  json choices = json::array();
  for (size_t i = 0; i < res.size(); ++i) {
    Choice& c = *choices_[i];
    std::string text;
    for (int t : res[i].tokens) text += c.out.push(t);
    text += c.out.finish();
    json choice = {{"index", i}, {"finish_reason", finish_reason(res[i].stop_reason)}};
    if (r_.chat)
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    else
      choice["text"] = text;
    if (r_.logprobs >= 0) choice["logprobs"] = i < tokens.size() ? logprobs_of(c, tokens[i], 0) : json(nullptr);
    choices.push_back(choice);
  }
  json out = {{"id", id_},           {"object", r_.chat ? "chat.completion" : "text_completion"},
              {"created", created_}, {"model", api_.name_},
              {"choices", choices},  {"usage", usage_of(res)}};
  // the `huginn` object: the first choice's, with every choice's under "choices" when n > 1
  out["huginn"] = huginn_of(res[0]);
  if (res.size() > 1) {
    json all = json::array();
    for (auto& x : res) all.push_back(huginn_of(x));
    out["huginn"]["choices"] = all;
  }
  return out;
}

json Api::complete(const ApiRequest& r, const ChunkFn& on_chunk) const {
  // Every choice in one batch (each its own sequence), in this thread.
  Reply reply(*this, r);
  struct Aborted {};
  std::vector<std::vector<JobToken>> toks(r.n);
  std::vector<SequenceResult> res;
  std::vector<float> lp(m_.config().vocab_size);
  for (int i = 0; i < r.n; ++i) {
    const GenerateOptions g = r.choice_options(i);
    GenerateOptions gl = g;
    gl.record_logits = r.logprobs >= 0;
    TokenCallback cb = [&](const TokenEvent& ev) {
      if (ev.thought || !on_chunk) return;
      JobToken t;
      t.token = ev.token;
      t.steps = ev.steps;
      if (!on_chunk(reply.token_chunk(i, t))) throw Aborted{};
    };
    try {
      res.push_back(generate(m_, r.prompt, gl, cb));
    } catch (const Aborted&) {
      return nullptr;
    }
    if (r.logprobs >= 0) {  // from the recorded logits, as the server's scheduler computes them
      const int V = m_.config().vocab_size;
      for (size_t k = 0; k < res[i].tokens.size(); ++k) {
        kern::log_softmax(res[i].step_logits.data() + k * V, lp.data(), V);
        JobToken t;
        t.token = res[i].tokens[k];
        t.steps = res[i].steps[k];
        t.logprob = lp[t.token];
        std::vector<int> idx(V);
        for (int v = 0; v < V; ++v) idx[v] = v;
        const int kk = std::min(r.logprobs, V);
        std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(),
                          [&](int a, int b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
        for (int v = 0; v < kk; ++v) t.top.emplace_back(idx[v], lp[idx[v]]);
        toks[i].push_back(std::move(t));
      }
      res[i].step_logits.clear();
    }
    if (on_chunk && !on_chunk(reply.final_chunk(i, res[i]))) return nullptr;
  }
  if (on_chunk && r.include_usage && !on_chunk(reply.usage_chunk(res))) return nullptr;
  Reply whole(*this, r);
  return whole.whole(res, toks);
}

}  // namespace huginn::serve
