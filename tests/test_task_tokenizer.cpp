// The task models' tokenizer.json, read by huginn's Hugging Face tokenizer,
// gives exactly the ids the task code uses: prompts with BOS, answers back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "huginn/tasks.h"
#include "huginn/tokenizer.h"

using namespace huginn;
using namespace huginn::tasks;

TEST(TaskTokenizer, HuggingFaceTokenizerAgreesWithTheTaskVocabulary) {
  const Tokenizer tok = Tokenizer::from_json(tokenizer_json().dump(), "task tokenizer");
  EXPECT_EQ(tok.token_to_id(kBosText), kBosId);
  EXPECT_EQ(tok.token_to_id(kEosText), kEosId);
  EXPECT_EQ(tok.token_to_id(kPadText), kPadId);
  for (const std::string& name : task_names()) {
    const Task& t = get_task(name);
    for (int d = t.min_difficulty(); d <= std::min(t.max_difficulty(), t.min_difficulty() + 6); ++d)
      for (uint64_t i = 0; i < 5; ++i) {
        const Instance in = sample(t, Split::Test, d, i);
        ASSERT_EQ(tok.encode(in.prompt, /*add_special=*/true), prompt_ids(in)) << name << " " << in.prompt;
        ASSERT_EQ(tok.encode(in.answer), encode_chars(in.answer)) << name;
        std::vector<int> ans = encode_chars(in.answer);
        ans.push_back(kEosId);
        EXPECT_EQ(tok.decode(ans, /*skip_special=*/true), in.answer);
        EXPECT_EQ(decode_answer_text(ans), in.answer);
      }
  }
  // Every character of the vocabulary, space and newline included, round-trips.
  std::string all;
  for (int id = 0; id < kCharVocabSize - 3; ++id) all.push_back(id_char(id));
  EXPECT_EQ(tok.encode(all), encode_chars(all));
  EXPECT_EQ(tok.decode(encode_chars(all)), all);
}
