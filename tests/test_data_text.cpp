// `huginn data tokenize` on text: documents go through the model's tokenizer
// and are packed with its end-of-text id between them.
#include <gtest/gtest.h>

#include <fstream>

#include "huginn/common.h"
#include "huginn/tasks.h"
#include "huginn/tokenizer.h"
#include "huginn/train.h"
#include "test_util.h"

using namespace huginn;

TEST(DataText, TextDocumentsAreTokenizedAndPackedWithEos) {
  auto dir = test::temp_dir("datatext");
  tasks::write_tokenizer_files(dir.string());  // a real tokenizer.json (character vocabulary)
  std::ofstream(dir / "docs.txt") << "12+34=46\n\nabc def\nsecond line\n";
  std::ofstream(dir / "docs.jsonl") << "{\"text\": \"xyz\"}\n";
  TokenizeOptions o;
  o.inputs = {(dir / "docs.txt").string(), (dir / "docs.jsonl").string()};
  o.out_prefix = (dir / "out").string();
  o.tokenizer = dir.string();
  o.val_fraction = 0;
  auto st = tokenize_files(o);
  EXPECT_EQ(st.docs_train, 3u);
  const Tokenizer tok = load_model_tokenizer(dir.string());
  const int eos = tok.token_to_id("<|end_text|>");
  ASSERT_GE(eos, 0);
  std::vector<int> want;
  for (std::string d : {"12+34=46", "abc def\nsecond line", "xyz"}) {
    auto ids = tok.encode(d, false);
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(eos);
  }
  EXPECT_EQ(st.tokens_train, want.size());
  TokenFileSource src(o.out_prefix + ".train.bin");
  ASSERT_EQ(src.size(), want.size());
  EXPECT_EQ((int)src.max_id(), *std::max_element(want.begin(), want.end()));
  // Without a tokenizer, text is refused with a clear message.
  o.tokenizer.clear();
  EXPECT_THROW(tokenize_files(o), Error);
  std::filesystem::remove_all(dir);
}
