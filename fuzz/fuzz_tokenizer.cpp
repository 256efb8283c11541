// tokenizer.json: the whole pipeline is built from the input, then a fixed
// text (ASCII, digits, Unicode 15 symbols, invalid UTF-8 excluded) is encoded
// and decoded with it.
#include "fuzz_common.h"
#include "huginn/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  HUGINN_FUZZ_EXPECTED({
    const huginn::Tokenizer t = huginn::Tokenizer::from_json(fuzz_text(data, size), "tokenizer.json");
    const auto ids = t.encode("Hello world 123 \xe2\x91\xa0\xe2\x91\xa1 \xf0\x9f\x9d\xbc  tabs\tand\nlines", true);
    (void)t.decode(ids);
    (void)t.decode(ids, true);
  });
  return 0;
}
