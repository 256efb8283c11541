// Reads a GGUF written by huginn.cpp's writer with Hugging Face's parser
// (@huggingface/gguf) and checks every key (type, element type, value), the
// counts, and every tensor (name, ggml type, shape, offset) against what the
// writer was given (EXPECTED.json, written by tests/test_gguf.cpp).
//   node check.js NODE_MODULES_PARENT FILE.gguf EXPECTED.json
// Exits 0 and prints "ok ..." when everything matches, else 1 naming each difference.
const path = require("path");
const fs = require("fs");

async function main() {
  const [modules, file, expectedPath] = process.argv.slice(2);
  const { gguf, GGUFValueType } = require(path.join(path.resolve(modules), "node_modules/@huggingface/gguf"));
  const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
  const r = await gguf(path.resolve(file), { allowLocalFile: true, typedMetadata: true });
  const errs = [];
  const md = r.typedMetadata;
  // 64-bit integers come back as BigInt (expected as decimal strings); the rest as JS values.
  const same = (a, e) => (typeof e === "string" && typeof a === "bigint" ? a.toString() === e : a === e);
  function checkValue(where, actual, type, subType, e) {
    if (GGUFValueType[type] !== e.type) return errs.push(`${where}: type ${GGUFValueType[type]}, expected ${e.type}`);
    if (e.type !== "ARRAY") {
      if (!same(actual, e.value)) errs.push(`${where}: value ${String(actual)}, expected ${e.value}`);
      return;
    }
    if (GGUFValueType[subType] !== e.elem) errs.push(`${where}: element type ${GGUFValueType[subType]}, expected ${e.elem}`);
    if (!Array.isArray(actual) || actual.length !== e.items.length)
      return errs.push(`${where}: ${Array.isArray(actual) ? actual.length : "no"} items, expected ${e.items.length}`);
    e.items.forEach((item, i) => {
      if (item.type === "ARRAY") {
        // the parser reports nested arrays' element type only at the top level
        if (!Array.isArray(actual[i]) || actual[i].length !== item.items.length) errs.push(`${where}[${i}]: nested array differs`);
        else item.items.forEach((x, j) => { if (!same(actual[i][j], x.value)) errs.push(`${where}[${i}][${j}] differs`); });
      } else if (!same(actual[i], item.value)) errs.push(`${where}[${i}]: ${String(actual[i])}, expected ${item.value}`);
    });
  }
  if (md.version.value !== 3) errs.push(`version ${md.version.value}`);
  if (md.kv_count.value !== BigInt(Object.keys(exp.metadata).length)) errs.push(`kv_count ${md.kv_count.value}`);
  if (md.tensor_count.value !== BigInt(exp.tensors.length)) errs.push(`tensor_count ${md.tensor_count.value}`);
  const keys = Object.keys(md).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
  if (keys.length !== Object.keys(exp.metadata).length) errs.push(`${keys.length} keys, expected ${Object.keys(exp.metadata).length}`);
  for (const [k, e] of Object.entries(exp.metadata)) {
    if (!(k in md)) { errs.push(`missing key ${k}`); continue; }
    checkValue(k, md[k].value, md[k].type, md[k].subType, e);
  }
  if (r.tensorInfos.length !== exp.tensors.length) errs.push(`${r.tensorInfos.length} tensors, expected ${exp.tensors.length}`);
  exp.tensors.forEach((e, i) => {
    const t = r.tensorInfos[i];
    if (!t) return;
    if (t.name !== e.name) errs.push(`tensor ${i}: name ${t.name}, expected ${e.name}`);
    if (t.dtype !== e.dtype) errs.push(`${e.name}: dtype ${t.dtype}, expected ${e.dtype}`);
    if (t.shape.map(String).join(",") !== e.ne.join(",")) errs.push(`${e.name}: shape ${t.shape}, expected ${e.ne}`);
    if (String(t.offset) !== e.offset) errs.push(`${e.name}: offset ${t.offset}, expected ${e.offset}`);
  });
  if (String(r.tensorDataOffset) !== exp.data_offset) errs.push(`tensorDataOffset ${r.tensorDataOffset}, expected ${exp.data_offset}`);
  if (errs.length) {
    console.error(errs.join("\n"));
    process.exit(1);
  }
  console.log(`ok: ${keys.length} keys, ${r.tensorInfos.length} tensors, data at ${r.tensorDataOffset}`);
}
main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
