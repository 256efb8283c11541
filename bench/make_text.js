// Writes the tokenizer benchmark's text: about 10 MB (UTF-8) as JSON-string
// lines of about 4 KiB each (whole documents), reproducibly from the parity
// test's corpus generator.
//   node make_text.js OUT.jsonl [MB] [english|mixed] [CHUNK_BYTES]
// english: prose only; mixed: the whole corpus (scripts, code, numbers,
// whitespace runs, emoji, very long words, random code points).
"use strict";
const fs = require("fs");
const path = require("path");
const {makeCorpus} = require(path.join(__dirname, "..", "tests", "parity", "corpus.js"));

const out = process.argv[2];
const mb = Number(process.argv[3] || 10);
const kind = process.argv[4] || "mixed";
const chunkBytes = Number(process.argv[5] || 4096);
if (!out) {
  console.error("usage: node make_text.js OUT.jsonl [MB] [english|mixed] [CHUNK_BYTES]");
  process.exit(2);
}
const target = mb * 1e6;
const lines = [];
let chunk = "", total = 0, seed = 1;
while (total < target) {
  let docs = makeCorpus(seed++, {specials: []});
  // english: the prose part only (documents 39..338 of each corpus).
  if (kind === "english") docs = docs.slice(39, 339);
  for (const d of docs) {
    chunk += d + "\n";
    if (Buffer.byteLength(chunk) >= chunkBytes) {
      lines.push(JSON.stringify(chunk));
      total += Buffer.byteLength(chunk);
      chunk = "";
      if (total >= target) break;
    }
  }
}
fs.writeFileSync(out, lines.join("\n") + "\n");
console.error(`${out}: ${lines.length} chunks, ${(total / 1e6).toFixed(2)} MB (${kind})`);
