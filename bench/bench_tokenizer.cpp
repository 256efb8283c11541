// Encode throughput of huginn's tokenizer, one thread: the chunks of a JSONL
// file (one JSON string per line), encoded one after the other, timed over
// several passes after a warm-up. Prints one JSON line; bench/tokenizer_speed.sh
// runs it next to Hugging Face tokenizers on the same text.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>

#include "huginn/common.h"
#include "huginn/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"tokenizer encode throughput (one thread)"};
  std::string tok_path, text_path;
  int passes = 3;
  app.add_option("tokenizer", tok_path, "tokenizer.json")->required();
  app.add_option("text", text_path, "JSONL file of text chunks (bench/make_text.js)")->required();
  app.add_option("--passes", passes, "timed passes (best is reported)");
  CLI11_PARSE(app, argc, argv);
  try {
    auto t0 = std::chrono::steady_clock::now();
    huginn::Tokenizer tok = huginn::Tokenizer::from_file(tok_path);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<std::string> chunks;
    std::ifstream f(text_path);
    if (!f) huginn::fail("cannot open ", text_path);
    std::string line;
    size_t bytes = 0;
    while (std::getline(f, line)) {
      chunks.push_back(nlohmann::json::parse(line).get<std::string>());
      bytes += chunks.back().size();
    }
    double best = 1e30;
    std::vector<std::vector<int>> all(chunks.size());
    for (int p = 0; p <= passes; ++p) {  // pass 0 warms up the word cache
      auto s = std::chrono::steady_clock::now();
      for (size_t i = 0; i < chunks.size(); ++i) all[i] = tok.encode(chunks[i], false);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      if (p > 0) best = std::min(best, dt);
    }
    uint64_t tokens = 0, checksum = 0;  // outside the timing, the same as the HF side
    for (const auto& ids : all) {
      tokens += ids.size();
      for (int id : ids) checksum = (checksum * 1000003u + (uint64_t)id) & 0xffffffffu;
    }
    std::cout << nlohmann::json{{"impl", "huginn"},      {"mb", bytes / 1e6},
                                {"seconds", best},      {"mb_per_s", bytes / 1e6 / best},
                                {"tokens", tokens},     {"checksum", checksum},
                                {"load_seconds", load_s}}
                     .dump()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
