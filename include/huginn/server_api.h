// The request/response logic of `huginn serve` (an OpenAI-style HTTP API for
// one model), without sockets: a JSON body becomes prompt ids and
// GenerateOptions (with clear validation errors), and a generation becomes
// the response JSON, whole or as Server-Sent Event chunks.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/scheduler.h"
#include "huginn/tokenizer.h"

namespace huginn::serve {

// A request the server refuses: an HTTP status (4xx) and a message for the client.
struct ApiError : Error {
  int status;
  ApiError(int status_, const std::string& message) : Error(message), status(status_) {}
};

// {"error": {"message": ..., "type": ...}}
nlohmann::json error_json(const std::string& message, const std::string& type = "invalid_request_error");

// Server-wide defaults and limits (the command line of `huginn serve`).
struct ServerConfig {
  int steps = -1;               // iterations per token when a request gives none (-1: the model's mean_recurrence)
  std::string exit = "none";    // exit criterion when a request gives none
  std::string cache = "full";   // KV cache strategy when a request gives none
  int max_steps = 1024;         // the largest `steps` a request may ask for
  int default_max_tokens = 16;  // completions without max_tokens (clipped to the context)
};

// One parsed request, ready for generate().
struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  int n = 1;                   // choices; choice i samples with seed + i
  int logprobs = -1;           // -1: none; k >= 0: each token's log-probability and its k most likely alternatives
  std::vector<int> prompt;
  GenerateOptions options;
  // The options of choice i.
  GenerateOptions choice_options(int i) const;
};

class Api;

// Builds the replies of one request from its choices' tokens: streamed
// chunks one token at a time, or the whole response.
class Reply {
 public:
  Reply(const Api& api, const ApiRequest& r);
  ~Reply();
  // The chunk for the next token of `choice` (its text, held back while it
  // could still become part of a stop string).
  nlohmann::json token_chunk(int choice, const JobToken& t);
  // The last chunk of `choice`: the rest of its text, finish_reason and its `huginn` object.
  nlohmann::json final_chunk(int choice, const SequenceResult& res);
  // The chunk with the usage of all choices (stream_options.include_usage).
  nlohmann::json usage_chunk(const std::vector<SequenceResult>& res) const;
  // The whole response; tokens[i]: choice i's tokens with their log-probabilities (if asked).
  nlohmann::json whole(const std::vector<SequenceResult>& res, const std::vector<std::vector<JobToken>>& tokens);
  const std::string& id() const { return id_; }

 private:
  struct Choice;
  nlohmann::json logprobs_of(Choice& c, const std::vector<JobToken>& toks, size_t offset);
  nlohmann::json chunk(int choice, const std::string& piece, const nlohmann::json& finish);
  nlohmann::json huginn_of(const SequenceResult& res) const;
  nlohmann::json usage_of(const std::vector<SequenceResult>& res) const;
  const Api& api_;
  const ApiRequest& r_;
  std::string id_;
  long long created_;
  std::vector<std::unique_ptr<Choice>> choices_;
};

// Calls with each Server-Sent Event payload (a JSON object) while a streamed
// request generates; returning false (the client went away) stops generation.
using ChunkFn = std::function<bool(const nlohmann::json&)>;

// The model being served and what requests need from its directory. Methods
// are const; generation must still be serialised by the caller (one model).
class Api {
 public:
  // tokenizer: text prompts, chat and text output (without it: prompt ids
  // only, output text is the ids separated by spaces). stop_ids: the model's
  // stop tokens (empty: Huginn-0125's default_stop_tokens()).
  Api(const Model& model, std::optional<Tokenizer> tokenizer, std::vector<int> stop_ids, std::string name,
      ServerConfig config = {});
  // A loaded model directory: its model, tokenizer, stop ids and name (the
  // bundle must outlive the Api).
  explicit Api(const LoadedModel& lm, ServerConfig config = {});
  // The model directory's tokenizer.json (if any, read once) and stop ids, as load_model finds them.
  static Api for_model_dir(const Model& model, const std::string& dir, ServerConfig config = {});

  const std::string& name() const { return name_; }
  const ServerConfig& config() const { return cfg_; }
  int default_steps() const;

  // GET /health and GET /v1/models.
  nlohmann::json health() const;
  nlohmann::json models() const;
  // POST /tokenize {"content": text, "add_special": bool} -> {"tokens": [...]};
  // POST /detokenize {"tokens": [...]} -> {"content": text}. ApiError for bad bodies.
  nlohmann::json tokenize(std::string_view body) const;
  nlohmann::json detokenize(std::string_view body) const;
  // The text of one token (its decoded bytes; without a tokenizer, its id).
  std::string token_text(int id) const;
  const std::optional<Tokenizer>& tokenizer() const { return tok_; }
  const Model& model() const { return m_; }

  // POST /v1/completions (chat = false) or /v1/chat/completions (chat = true):
  // throws ApiError(400, message naming the field) for anything invalid.
  ApiRequest parse(std::string_view body, bool chat) const;

  // Generates. Returns the whole response (OpenAI shape plus a `huginn`
  // object); with on_chunk, also emits one chunk per token and a final chunk
  // with finish_reason and usage. Returns null if on_chunk returned false.
  nlohmann::json complete(const ApiRequest& r, const ChunkFn& on_chunk = {}) const;

  // The response text of generated tokens, as complete() builds it: the stop
  // token's text left out, output cut before the first stop string.
  std::string text_of(const ApiRequest& r, const std::vector<int>& tokens) const;

 private:
  friend class Reply;
  const Model& m_;
  std::optional<Tokenizer> tok_;
  std::vector<int> stop_ids_;
  std::string name_;
  ServerConfig cfg_;
  DecodeSpec defaults_;  // cfg_ parsed: what a request starts from
};

// Serialises JSON for the wire (invalid UTF-8 replaced, never a throw).
std::string dump(const nlohmann::json& j);

}  // namespace huginn::serve
