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
  int steps = -1;             // iterations per token when a request gives none (-1: the model's mean_recurrence)
  std::string exit = "none";  // exit criterion when a request gives none
  std::string cache = "full"; // KV cache strategy when a request gives none
  int max_steps = 1024;       // the largest `steps` a request may ask for
  int default_max_tokens = 16;  // completions without max_tokens (clipped to the context)
};

// One parsed request, ready for generate().
struct ApiRequest {
  bool chat = false;
  bool stream = false;
  std::vector<int> prompt;
  GenerateOptions options;
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
