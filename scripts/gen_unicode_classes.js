// Generates the Unicode tables of the tokenizer from Hugging Face tokenizers
// itself (the npm peer of tests/parity), so they are exactly the reference's,
// whatever Unicode version each of its parts was built with (they differ: its
// regex engine, Rust's char methods, the unicode-categories and
// unicode-normalization crates each have their own):
//   src/text/unicode_classes.inc  every general category as its regex engine sees it
//   src/text/unicode_tables.inc   the Punctuation/Bert pre-tokenizers' punctuation,
//                                 the Digits pre-tokenizer's numerics, the regex \w,
//                                 the Lowercase normalizer's mapping, and the code
//                                 points the NFD/NFKD normalizers decompose
//
//   node scripts/gen_unicode_classes.js MODULES_DIR src/text
//
// MODULES_DIR: where `npm ci` installed tests/parity/package.json (ctest
// tokenizer.parity.npm_install puts it in build/parity).
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const {Tokenizer} = require(path.resolve(process.argv[2], "node_modules/@anush008/tokenizers"));

const CATS = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
              "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co"];
const isSurrogate = (cp) => cp >= 0xd800 && cp <= 0xdfff;
// The code points base..base+n-1 (at most U+10FFFF) but surrogates and `skip`.
function chunk(base, n, skip) {
  const cps = [];
  for (let cp = base; cp < Math.min(base + n, 0x110000); ++cp) if (!isSurrogate(cp) && cp !== skip) cps.push(cp);
  return cps;
}

function members(cat) {
  const sep = cat[0] === "L" ? 0x21 : 0x61;  // '!' or 'a': outside the class
  return removed(tokenizer({pre_tokenizer: {type: "Split", pattern: {Regex: `\\p{${cat}}`}, behavior: "Removed",
                                            invert: false}}).getPreTokenizer(), sep);
}

// Code points that come out of the pre-tokenizer as a piece of their own.
function isolated(pre, sep) {
  const out = [];
  for (let base = 0; base <= 0x10ffff; base += 8192) {
    const cps = chunk(base, 8192, sep);
    const s = String.fromCodePoint(sep) + cps.map((cp) => String.fromCodePoint(cp, sep)).join("");
    for (const [p] of pre.preTokenizeString(s)) {
      const a = Array.from(p);
      if (a.length === 1 && a[0].codePointAt(0) !== sep) out.push(a[0].codePointAt(0));
    }
  }
  return out;
}

// What the normalizer makes of each code point alone, where it changes it:
// [[cp, [out...]], ...]. The separator (a private-use code point) is left
// alone by every normalizer.
function mapped(norm) {
  const sep = 0xe000, out = [];
  for (let base = 0; base <= 0x10ffff; base += 8192) {
    const cps = chunk(base, 8192, sep);
    const s = cps.map((cp) => String.fromCodePoint(sep, cp)).join("");
    const parts = norm.normalizeString(s).split(String.fromCodePoint(sep)).slice(1);
    if (parts.length !== cps.length) throw new Error(`normalizer output does not split at ${base}`);
    cps.forEach((cp, i) => {
      const o = Array.from(parts[i], (c) => c.codePointAt(0));
      if (o.length !== 1 || o[0] !== cp) out.push([cp, o]);
    });
  }
  return out;
}

function tokenizer(obj) {
  const file = path.join(os.tmpdir(), `huginn_unicode_${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify(Object.assign({version: "1.0", model: {type: "BPE", vocab: {}, merges: []}}, obj)));
  const t = Tokenizer.fromFile(file);
  fs.unlinkSync(file);
  return t;
}

// "Removed" drops every code point of the class; a separator outside the
// class between code points tells which ones were dropped.
function removed(pre, sep) {
  const out = [];
  for (let base = 0; base <= 0x10ffff; base += 8192) {
    const cps = chunk(base, 8192, sep);
    const s = String.fromCodePoint(sep) + cps.map((cp) => String.fromCodePoint(cp, sep)).join("");
    const kept = Array.from(pre.preTokenizeString(s).map((p) => p[0]).join(""), (c) => c.codePointAt(0));
    let k = 1;
    for (const cp of cps) {
      if (kept[k] === cp) k += 2;
      else { out.push(cp); k += 1; }
    }
  }
  return out;
}

// The characters a single_word added token may not touch: the token "x",
// single_word, after each code point; where it is not matched, the code point
// is a word character (Rust regex's \\w: Join_Control in, No out).
async function singleWordChars() {
  const t = tokenizer({
    added_tokens: [{id: 0, content: "x", single_word: true, lstrip: false, rstrip: false, normalized: false, special: false}],
    pre_tokenizer: {type: "WhitespaceSplit"}, model: {type: "WordLevel", vocab: {"[UNK]": 1}, unk_token: "[UNK]"}});
  const out = [];
  for (let base = 0; base <= 0x10ffff; base += 1024) {
    const cps = chunk(base, 1024, 0x78);
    const e = await t.encode(cps.map((cp) => String.fromCodePoint(cp) + "x ").join(""), null, {addSpecialTokens: false});
    const toks = e.getTokens(), offs = e.getOffsets(), matched = new Set();
    toks.forEach((tk, j) => {  // offsets count code points: item i's x is at 3i+1
      if (tk !== "x") return;
      if ((offs[j][0] - 1) % 3 !== 0) throw new Error(`single_word probe: x at ${offs[j][0]} in chunk ${base}`);
      matched.add((offs[j][0] - 1) / 3);
    });
    cps.forEach((cp, i) => { if (!matched.has(i)) out.push(cp); });
  }
  return out;
}

// The code points the normalizers give a nonzero canonical combining class
// (or decompose into marks): X where NFD reorders "a U+0345 X" (0 < ccc(X)
// < 240) or "a X U+0334" (ccc(X) > 1). A mark newer than the reference's
// tables is a starter to it: no reordering across it.
function combining() {
  const n = tokenizer({normalizer: {type: "NFD"}}).getNormalizer(), out = [];
  for (let cp = 0; cp <= 0x10ffff; ++cp) {
    if (isSurrogate(cp)) continue;
    const x = String.fromCodePoint(cp), nx = n.normalizeString(x);
    if (n.normalizeString("a\u0345" + x) !== "a\u0345" + nx || n.normalizeString("a" + x + "\u0334") !== "a" + nx + "\u0334")
      out.push(cp);
  }
  return out;
}

const hex = (a) => `0x${a.toString(16).toUpperCase()}`;
function wrap(items, per) {
  const w = [];
  for (let i = 0; i < items.length; i += per) w.push("    " + items.slice(i, i + per).join(", "));
  return w.join(",\n");
}
function classLine(name, cps) {
  const r = ranges(cps);
  process.stderr.write(`${name}: ${r.length} ranges\n`);
  return `HUGINN_UNICODE_CLASS(${name},\n${wrap(r.map(([a, b]) => `{${hex(a)}, ${hex(b)}}`), 6)})`;
}

function ranges(cps) {
  const r = [];
  for (const cp of cps) {
    if (r.length && r[r.length - 1][1] === cp - 1) r[r.length - 1][1] = cp;
    else r.push([cp, cp]);
  }
  return r;
}

const outDir = process.argv[3];
if (!outDir) throw new Error("usage: node scripts/gen_unicode_classes.js MODULES_DIR OUT_DIR (src/text)");
const lines = ["// Generated by scripts/gen_unicode_classes.js from Hugging Face tokenizers",
               "// (@anush008/tokenizers, tests/parity/package.json): the code point ranges",
               "// of each general category as its regex engine sees them. Do not edit.",
               "// HUGINN_UNICODE_CLASS(name, {first, last}, ...)"];
for (const cat of CATS) lines.push(classLine(cat, members(cat)));
fs.writeFileSync(path.join(outDir, "unicode_classes.inc"), lines.join("\n") + "\n");

const t = ["// Generated by scripts/gen_unicode_classes.js from Hugging Face tokenizers",
           "// (@anush008/tokenizers, tests/parity/package.json). Do not edit.",
           "// HUGINN_UNICODE_CLASS(name, {first, last}, ...): Punct, what the Punctuation and",
           "// BertPreTokenizer pre-tokenizers split off; Numeric, what the Digits pre-tokenizer",
           "// splits; Word, the regex \\w (Whitespace pre-tokenizer); SingleWord, what a single_word",
           "// added token may not touch (Rust regex's \\w: Join_Control in, No out);",
           "// Combining, what the normalizers reorder as marks (or decompose into marks);",
           "// NfdChanged / NfkdChanged, the code points the NFD / NFKD normalizers change.",
           "// HUGINN_UNICODE_LOWER(cp, {out...}): the Lowercase normalizer, where it changes cp."];
t.push(classLine("Punct", removed(tokenizer({pre_tokenizer: {type: "Punctuation", behavior: "Removed"}}).getPreTokenizer(), 0x61)));
t.push(classLine("Numeric", isolated(tokenizer({pre_tokenizer: {type: "Digits", individual_digits: true}}).getPreTokenizer(), 0x21)));
t.push(classLine("Word", removed(tokenizer({pre_tokenizer: {type: "Split", pattern: {Regex: "\\w"}, behavior: "Removed",
                                                     invert: false}}).getPreTokenizer(), 0x21)));
(async () => {
t.push(classLine("SingleWord", (await singleWordChars()).concat([0x78]).sort((a, b) => a - b)));
t.push(classLine("Combining", combining()));
for (const [name, form] of [["NfdChanged", "NFD"], ["NfkdChanged", "NFKD"]])
  t.push(classLine(name, mapped(tokenizer({normalizer: {type: form}}).getNormalizer()).map(([cp]) => cp)));
const lower = mapped(tokenizer({normalizer: {type: "Lowercase"}}).getNormalizer());
process.stderr.write(`Lowercase: ${lower.length} code points\n`);
t.push(lower.map(([cp, o]) => `HUGINN_UNICODE_LOWER(${hex(cp)}, {${o.map(hex).join(", ")}})`).join("\n"));
fs.writeFileSync(path.join(outDir, "unicode_tables.inc"), t.join("\n") + "\n");
})();
