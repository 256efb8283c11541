// Small tokenizer.json files built in the tests, and running the CLI.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace huginn::testutil {

using json = nlohmann::json;

// A BPE model over `vocab` (token -> id) with `merges`; no other components.
inline json bpe_json(const json& vocab, const json& merges) {
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                         {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                         {"vocab", vocab}, {"merges", merges}}}};
}

inline json added(int id, const std::string& content, bool special, bool lstrip = false, bool rstrip = false,
                  bool single_word = false, bool normalized = false) {
  return json{{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
              {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/huginn_tok_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

struct RunResult {
  int rc;
  std::string out, err;
};

// Runs the huginn CLI with `args`, feeding `input` on stdin.
inline RunResult run_cli(const std::string& args, const std::string& input) {
  TempDir d;
  const std::string in = d.write("stdin", input);
  const std::string out = (d.path / "stdout").string(), err = (d.path / "stderr").string();
  const std::string cmd = std::string(HUGINN_BIN) + " " + args + " < " + in + " > " + out + " 2> " + err;
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace huginn::testutil
