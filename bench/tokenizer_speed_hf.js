// Encode throughput of Hugging Face tokenizers (npm @anush008/tokenizers, the
// native Rust library) on the chunks of a JSONL file, one chunk at a time, in
// the same way as bench_tokenizer.cpp. Prints one JSON line.
//   node tokenizer_speed_hf.js MODULES_DIR TOKENIZER.json TEXT.jsonl [PASSES]
"use strict";
const fs = require("fs");
const path = require("path");
const {createRequire} = require("module");

async function main() {
  const [modules, tokPath, textPath, passesArg] = process.argv.slice(2);
  if (!textPath) {
    console.error("usage: node tokenizer_speed_hf.js MODULES_DIR TOKENIZER.json TEXT.jsonl [PASSES]");
    process.exit(2);
  }
  const {Tokenizer} = createRequire(path.resolve(modules, "package.json"))("@anush008/tokenizers");
  const passes = Number(passesArg || 3);
  let t = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const loadS = Number(process.hrtime.bigint() - t) / 1e9;
  const chunks = fs.readFileSync(textPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  const bytes = chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
  let best = Infinity;
  let all = [];
  for (let p = 0; p <= passes; p++) {  // pass 0 warms up the cache
    all = [];
    t = process.hrtime.bigint();
    for (const c of chunks) all.push((await tok.encode(c, null, {addSpecialTokens: false})).getIds());
    const dt = Number(process.hrtime.bigint() - t) / 1e9;
    if (p > 0) best = Math.min(best, dt);
  }
  // Outside the timing: the same checksum as bench_tokenizer.cpp.
  let tokens = 0, checksum = 0;
  for (const ids of all) {
    tokens += ids.length;
    for (const id of ids) checksum = Number((BigInt(checksum) * 1000003n + BigInt(id)) & 0xffffffffn);
  }
  console.log(JSON.stringify({impl: "hf-tokenizers", mb: bytes / 1e6, seconds: best, mb_per_s: bytes / 1e6 / best,
                              tokens, checksum, load_seconds: loadS}));
}
main().catch((e) => {
  console.error(`error: ${e.stack || e}`);
  process.exit(1);
});
