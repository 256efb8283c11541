// Reproducible corpus for the tokenizer parity test: makeCorpus(seed, extra)
// returns the same list of strings for the same arguments on every machine.
"use strict";

function rng(seed) {  // mulberry32
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),  // inclusive
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
  return r;
}

const WORDS = ("the of and to in is was for that on as with by he at from his an were are which this be or had " +
  "not but what all when we there can been has more if will one would about their out so said up into time " +
  "recurrent depth model latent reasoning language token embedding gradient tokenizer parity Huginn Odin raven " +
  "thought memory world question answer because although however therefore meanwhile anything extraordinary " +
  "internationalization misunderstanding electroencephalography pneumonoultramicroscopicsilicovolcanoconiosis " +
  "don't can't I'm you're we'll they'd it's She's HE'S WE'VE Y'ALL o'clock rock'n'roll naïve café résumé " +
  "coöperate façade jalapeño Zürich São Paulo Ελλάδα Москва 東京 서울 القاهرة").split(" ");

const SCRIPTS = [
  "Привет, как дела? Это тест токенизатора.",
  "Γειά σου Κόσμε! Η γλώσσα είναι ελληνική.",
  "你好，世界！今天天气很好，我们去公园散步吧。",
  "日本語のテキストです。カタカナとひらがなと漢字。",
  "한국어 문장입니다. 토크나이저를 시험합니다.",
  "مرحبا بالعالم! هذه جملة عربية.",
  "שלום עולם, זה משפט בעברית.",
  "नमस्ते दुनिया। यह हिंदी में एक वाक्य है।",
  "สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
  "Tiếng Việt có dấu: Xin chào thế giới, cảm ơn nhiều.",
  "Türkçe: İstanbul'da ılık bir gün. IĞDIR ŞİŞLİ",
  "Deutsch: Größenwahn, Straße, Äpfel und Öl. ẞ",
  "Ελληνικά ΣΊΣΥΦΟΣ σίσυφος ΌΣΟΣ",
  "ქართული ენა, Հայերեն լեզու, አማርኛ ቋንቋ",
  "தமிழ் மொழி, తెలుగు భాష, ಕನ್ನಡ, മലയാളം, বাংলা ভাষা",
  "Ꭰ Ꮎ Ꮻ Cherokee, ᠮᠣᠩᠭᠣᠯ Mongolian, ትግርኛ",
  "Математика: ∀x∈ℝ, ∃y: x² + y² ≤ 1; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ π/4",
  "Full-width: ＡＢＣ１２３！？ and half-width ｶﾀｶﾅ; ligatures ﬁ ﬂ ﬀ; ① ② ③; ™ ℃ ㎏",
];

const EMOJI = ["😀", "🤖", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪", "🇯🇵", "❤️", "🫠", "🧑🏿‍💻", "⚡", "✨", "🐦‍⬛", "1️⃣", "©️"];

const CODE = [
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "#include <stdio.h>\nint main(void) {\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n",
  "const f = async (x) => { await sleep(10); return x?.y ?? [1, 2, 3].map(v => v ** 2); };",
  "{\"name\": \"huginn\", \"version\": \"0.1.0\", \"deps\": [\"onig\", \"utf8proc\"], \"ok\": true}",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "<div class=\"a\"><p>Hello &amp; welcome</p><br/></div>\n<!-- comment -->",
  "fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u8> = vec![0xff; 16];\n    Ok(())\n}",
  "    \t  mixed\t\tindentation\n\t\t\tdeep\n        spaces   \n",
  "x = [i**2 for i in range(10) if i % 2 == 0]  # squares\r\nprint(x)\r\n",
  "$ git commit -m \"fix: ε-greedy\" && ./build/bin/huginn --help | grep -E '^\\s+-'",
  "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&=8;i|=9;j^=10;k&&l||!m",
  "https://example.com/path/to/page?query=1&lang=en#section-2 mailto:someone@example.org",
];

const COMBINING = [];
for (let c = 0x300; c <= 0x36f; c++) COMBINING.push(String.fromCodePoint(c));

const SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   ", "\u00a0", "\u3000", "\u2009", " \n ", "\t\t", "\r", "\u2028", "\u200b", "\f", "\v"];

// Code point ranges for random text: well-established blocks only.
const RANGES = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0xa1, 0xff], [0x100, 0x17f], [0x180, 0x24f], [0x370, 0x3ff],
  [0x400, 0x4ff], [0x5d0, 0x5ea], [0x620, 0x64a], [0x900, 0x97f], [0xe01, 0xe3a], [0x3041, 0x3096],
  [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x2000, 0x206f], [0x2190, 0x21ff], [0x2200, 0x22ff],
  [0x2500, 0x257f], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0xff01, 0xff5e], [0x300, 0x36f], [0x30, 0x39],
];
// Unicode 15 and 16 additions, for the cases whose regex classes must match
// the reference's tables (extra.unicode16): alchemical symbols, symbols and
// pictographs extended-A, Kawi, Garay, Todhri, Sunuwar, Kirat Rai, Ol Onal,
// legacy computing supplement.
const RANGES_UNICODE16 = [
  [0x1f700, 0x1f77f], [0x1fa70, 0x1faff], [0x11f00, 0x11f59], [0x10d40, 0x10d8f], [0x105c0, 0x105f3],
  [0x11bc0, 0x11be1], [0x16d40, 0x16d79], [0x1e5d0, 0x1e5ff], [0x1cc00, 0x1ceb3],
  // where the reference's parts disagree with each other and with today's
  // Unicode: punctuation added after its unicode-categories tables (U+061D,
  // U+2E43-2E5D, Balinese), letters and case pairs of Unicode 16 (U+1C89,
  // U+A7CB-A7DC), compatibility decompositions its normalization tables do
  // not have (U+32FF, U+A7F2-A7F4, U+AB69, U+10780-107BA), U+11938.
  [0x600, 0x61f], [0x1b5a, 0x1b7f], [0x2e3a, 0x2e5d], [0x1c80, 0x1c8a], [0xa7c0, 0xa7dc], [0xa7f0, 0xa7ff],
  [0x32f0, 0x32ff], [0xab5c, 0xab6b], [0x10780, 0x107ba], [0x11930, 0x11946], [0xb2, 0xbe], [0x166b, 0x166f],
];

function makeCorpus(seed, extra) {
  const r = rng(seed);
  const out = [];
  const specials = extra.specials || [];
  const word = () => r.pick(WORDS);
  const sentence = () => {
    const n = r.int(3, 18);
    const ws = [];
    for (let i = 0; i < n; i++) ws.push(word());
    let s = ws.join(" ");
    if (r.chance(0.5)) s = s[0].toUpperCase() + s.slice(1);
    return s + r.pick([".", "!", "?", "...", ",", ";", ":", " —", "", "?!"]);
  };
  const randText = (n) => {
    let s = "";
    for (let i = 0; i < n; i++) {
      const [lo, hi] = r.pick(ranges);
      s += String.fromCodePoint(r.int(lo, hi));
    }
    return s;
  };
  const digits = (n) => {
    let s = String(r.int(1, 9));
    for (let i = 1; i < n; i++) s += String(r.int(0, 9));
    return s;
  };

  // Fixed edge cases.
  out.push("", " ", "  ", "\n", "\t", "\r\n", "a", "A", "0", "'", "'s", " 's", "\u00e9", "e\u0301", "\u200d",
           "<", "<|", "|>", "▁", "▁▁", " ▁", "Ġ", "<0x41>", "\ufffd", "😀", "\u{10ffff}".slice(0, 0) + "\u{1f9d1}",
           "Hello world", " Hello world", "Hello world ", "hello\n\nworld", "   leading", "trailing   ",
           "\n\n\n\n\n", " \n \n ", "\t\t\tx", "x\t\t\t");
  const ranges = extra.unicode16 ? RANGES.concat(RANGES_UNICODE16, RANGES_UNICODE16) : RANGES;
  if (extra.unicode16) {
    // U+1F77C (So since 15.0), Kawi and Garay digits (Nd), Todhri and Ol Onal
    // letters, new emoji and legacy computing symbols.
    out.push("①②③ 🝼", "🝼", "x🝼y", " 🝼🝻!", "\u{11f50}\u{11f51}\u{11f52}\u{11f53}",
             "a\u{10d40}\u{10d41}\u{10d42}\u{10d43}b", "\u{105c0}\u{105c1} \u{1e5d0}\u{1e5d1}",
             "\u{1fa89}\u{1fae9} \u{1cc00}\u{1cc01}", "\u{11bc0}\u{11bf0}\u{16d40}\u{16d70}",
             "\u061d\u09fd\u0a76 \u2e43\u2e5d \u166d\u{111c9}", "\u1c89\ua7cb\ua7cc \ua7f2\ua7f3\uab69\u32ff",
             "\u{11938}\u{11935}\u{11930}", "\u00b2\u00bd x\u00b2y", "Huginn\u200d Huginn\u00b2 \u00b2Huginn \u200dHuginn",
             "<think>\u200d<think>\u00b2<think>");
  }

  for (let i = 0; i < 300; i++) {  // prose
    let s = sentence();
    const k = r.int(0, 3);
    for (let j = 0; j < k; j++) s += r.pick([" ", "\n", "\n\n", "  "]) + sentence();
    out.push(s);
  }
  for (let i = 0; i < 150; i++) {  // other scripts, mixed with English and emoji
    let s = r.pick(SCRIPTS);
    if (r.chance(0.5)) s += " " + sentence();
    if (r.chance(0.3)) s = r.pick(EMOJI) + s + r.pick(EMOJI);
    if (r.chance(0.3)) s += r.pick(SPACES) + r.pick(SCRIPTS);
    out.push(s);
  }
  for (let i = 0; i < 150; i++) {  // code
    let s = r.pick(CODE);
    if (r.chance(0.5)) s = s.replace(/    /g, r.pick(["\t", "  ", "        "]));
    if (r.chance(0.3)) s += r.pick(CODE);
    out.push(s);
  }
  for (let i = 0; i < 200; i++) {  // numbers
    const kind = r.int(0, 7);
    if (kind === 0) out.push(digits(r.int(1, 12)));
    else if (kind === 1) out.push(digits(r.int(20, 400)));
    else if (kind === 2) out.push(`${r.int(-99999, 99999)}.${digits(r.int(1, 9))}e${r.int(-30, 30)}`);
    else if (kind === 3) out.push(`+1 (${digits(3)}) ${digits(3)}-${digits(4)}, ${r.int(1900, 2100)}-${String(r.int(1, 12)).padStart(2, "0")}-${String(r.int(1, 28)).padStart(2, "0")}`);
    else if (kind === 4) out.push(`${word()}${digits(r.int(1, 8))}${word()} ${digits(r.int(1, 5))}x${digits(r.int(1, 5))}`);
    else if (kind === 5) out.push(`1,234,567.89 ١٢٣٤٥ ४५६ ½ ¾ ² ³ Ⅻ 0x${digits(8)} 0b1010 ${digits(3)}%`);
    else if (kind === 6) out.push(Array.from({length: r.int(2, 30)}, () => digits(r.int(1, 6))).join(r.pick([" ", ",", ", ", "\n", "\t", "."])));
    else out.push(`${r.int(0, 9)}`.repeat(r.int(2, 100)));
  }
  for (let i = 0; i < 200; i++) {  // whitespace runs
    let s = "";
    const n = r.int(1, 12);
    for (let j = 0; j < n; j++) {
      s += r.chance(0.5) ? word() : "";
      let ws = "";
      const m = r.int(1, 6);
      for (let k = 0; k < m; k++) ws += r.pick(SPACES);
      s += ws;
    }
    out.push(s);
  }
  for (let i = 0; i < 150; i++) {  // emoji and combining marks
    let s = "";
    const n = r.int(1, 15);
    for (let j = 0; j < n; j++) {
      const kind = r.int(0, 3);
      if (kind === 0) s += r.pick(EMOJI);
      else if (kind === 1) {
        s += r.pick(["a", "e", "o", "u", "n", "c", "A", "O", "ı", "α", "и", " "]);
        const m = r.int(1, 4);
        for (let k = 0; k < m; k++) s += r.pick(COMBINING);
      } else if (kind === 2) s += word();
      else s += r.pick(SPACES);
    }
    out.push(s);
  }
  for (let i = 0; i < 300; i++) {  // special and added tokens inside text
    if (specials.length === 0) break;
    let s = "";
    const n = r.int(1, 6);
    for (let j = 0; j < n; j++) {
      const kind = r.int(0, 5);
      if (kind <= 1) s += r.pick(specials);
      else if (kind === 2) {  // a truncated or padded token
        const t = r.pick(specials);
        s += r.chance(0.5) ? t.slice(0, r.int(1, Math.max(1, t.length - 1))) : t + t.slice(-1);
      } else if (kind === 3) s += r.pick(SPACES);
      else s += sentence();
      if (r.chance(0.3)) s += r.pick([" ", "\n", "", "x", "\t"]);
    }
    out.push(s);
  }
  for (let i = 0; i < 120; i++) {  // very long words
    const kind = r.int(0, 5);
    if (kind === 0) out.push(r.pick(["a", "ab", "x", "é", "的", "ᄀ", "-", "=", "_", "!", " "]).repeat(r.int(50, 2000)));
    else if (kind === 1) out.push(Array.from({length: r.int(200, 1500)}, () => String.fromCharCode(r.int(97, 122))).join(""));
    else if (kind === 2) out.push(word().repeat(r.int(10, 200)));
    else if (kind === 3) {
      const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      out.push(Array.from({length: r.int(100, 2000)}, () => b64[r.int(0, 63)]).join("") + "==");
    } else if (kind === 4) out.push("https://example.com/" + Array.from({length: r.int(20, 80)}, () => word()).join("/"));
    else out.push(randText(r.int(100, 600)).replace(/\s/g, ""));
  }
  for (let i = 0; i < 400; i++) out.push(randText(r.int(1, 80)));  // random code points
  for (let i = 0; i < 100; i++) {  // ASCII punctuation soup
    let s = "";
    const n = r.int(1, 60);
    for (let j = 0; j < n; j++) s += String.fromCharCode(r.int(0x20, 0x7e));
    out.push(s);
  }
  for (let i = 0; i < 80; i++) {  // contractions and case
    const c = r.pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "’s"]);
    out.push(`${word()}${c} ${word()}${c}${r.pick([" ", "", "\n"])}${word().toUpperCase()}${c}`);
  }
  return out;
}

// Random id sequences for decode parity.
function makeIdSequences(seed, validIds, count) {
  const r = rng(seed);
  const seqs = [];
  for (let i = 0; i < count; i++) {
    const n = r.int(1, 24);
    const s = [];
    for (let j = 0; j < n; j++) s.push(r.pick(validIds));
    seqs.push(s);
  }
  return seqs;
}

module.exports = {makeCorpus, makeIdSequences, rng};
