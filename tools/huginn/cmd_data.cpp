// huginn data: prepare training data (tokenize into memory-mappable token
// files; inspect a data spec).
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/train.h"

namespace huginn::cli {
namespace {
struct ShowOpts {
  std::string spec;
  int vocab = 65536, seq_len = 32, count = 2;
  bool validation = false;
};

int show(const ShowOpts& o) {
  DataSources ds = open_data(o.spec, o.vocab);
  auto src = o.validation ? ds.val : ds.train;
  if (!src) fail(o.spec, ": has no validation split");
  std::printf("%s\n", src->describe().c_str());
  std::vector<int> ids(o.seq_len), labels(o.seq_len);
  for (int i = 0; i < o.count; ++i) {
    src->get((uint64_t)i, o.seq_len, ids.data(), labels.data());
    std::printf("sequence %d\n  ids:   ", i);
    for (int v : ids) std::printf(" %d", v);
    std::printf("\n  labels:");
    for (int v : labels) std::printf(" %d", v);
    std::printf("\n");
  }
  return 0;
}
}  // namespace

static Register reg("data", "prepare training data: tokenize, show", [](CLI::App& app) {
  app.require_subcommand(1);
  auto to = std::make_shared<TokenizeOptions>();
  CLI::App* tok = app.add_subcommand(
      "tokenize",
      "turn .jsonl ([ids] / {\"ids\": [...]} / {\"text\": ...} per line) or text files (documents separated by blank "
      "lines) into PREFIX.train.bin and PREFIX.val.bin (documents packed with EOS between them)");
  tok->add_option("inputs", to->inputs, "input files")->required();
  tok->add_option("--out", to->out_prefix, "output prefix")->required();
  tok->add_option("--tokenizer", to->tokenizer, "tokenizer.json or model directory (for text)");
  tok->add_option("--val-fraction", to->val_fraction, "fraction of documents for validation")->capture_default_str();
  tok->add_option("--eos", to->eos, "end-of-document id (required for pre-tokenized input)");
  add_seed_option(*tok, to->seed, "seed of the document split")->capture_default_str();
  auto so = std::make_shared<ShowOpts>();
  CLI::App* sh = app.add_subcommand("show", "print the first sequences of a data spec");
  sh->add_option("spec", so->spec, "synthetic:TASK[,...] or tokens:PREFIX")->required();
  sh->add_option("--vocab", so->vocab, "vocabulary size to check against")->capture_default_str();
  sh->add_option("--seq-len", so->seq_len, "tokens per sequence")->capture_default_str();
  sh->add_option("--count", so->count, "sequences to print")->capture_default_str();
  sh->add_flag("--validation", so->validation, "show the validation split");
  return [to, so, tok, sh]() -> int {
    if (tok->parsed()) {
      auto st = tokenize_files(*to);
      std::printf("wrote %s.train.bin (%llu documents, %llu tokens) and %s.val.bin (%llu documents, %llu tokens)\n",
                  to->out_prefix.c_str(), (unsigned long long)st.docs_train, (unsigned long long)st.tokens_train,
                  to->out_prefix.c_str(), (unsigned long long)st.docs_val, (unsigned long long)st.tokens_val);
      return 0;
    }
    if (sh->parsed()) return show(*so);
    return 1;
  };
});
}  // namespace huginn::cli
