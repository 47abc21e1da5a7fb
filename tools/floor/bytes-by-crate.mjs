// Which crates a Wasm module's bytes come from: sums `twiggy top -f json` rows
// by the crate that owns each function (for `<T as Trait>::f`, the crate of
// T's path). Sections a release build strips (debug info, names) are left out.
//
//   twiggy top -n 1000000 -f json MODULE.wasm > top.json   (MODULE built with symbols)
//   node tools/floor/bytes-by-crate.mjs top.json [TOP]

import { readFileSync } from "node:fs";

const [file, top = "40"] = process.argv.slice(2);
const rows = JSON.parse(readFileSync(file, "utf8"));

const PRIMITIVE = /^(str|char|bool|f32|f64|[iu](8|16|32|64|128|size)|\[.*\]|T|&.*|\(.*\))$/;

/** The crate a demangled item name belongs to. */
function crateOf(name) {
  if (name.startsWith("custom section") || name.includes("names\" subsection")) return null;
  if (name.startsWith("data segment")) return "(data segments: strings and constant tables)";
  if (/^(import |export |type\[|table\[|memory\[|global\[|elem\[|code section|data section|wasm magic|section headers)/.test(name)) {
    return "(module structure: types, imports, exports, tables)";
  }
  if (!name.includes("::")) return /^proxy_on_/.test(name) ? "proxy_wasm" : "(libc and dlmalloc, from wasi-libc)";
  // `<str>::f` and `<T as core::fmt::Debug>::fmt`: a primitive's or a generic's method belongs to the trait's crate (core when inherent).
  const impl = name.match(/^<([^<>]*?)(?: as ([^<>]*?))?>::/);
  let path = name;
  if (impl) path = PRIMITIVE.test(impl[1]) ? (impl[2] ?? "core") : impl[1];
  path = path.replace(/^(<|&mut |&|dyn |\*const |\*mut )+/, "");
  return path.split("::")[0].replace(/\[[0-9a-f]+\]$/, "");
}

const byCrate = new Map();
let total = 0;
for (const { name, shallow_size: size } of rows) {
  const crate = crateOf(name);
  if (crate === null) continue;
  total += size;
  const entry = byCrate.get(crate) ?? { bytes: 0, items: 0 };
  entry.bytes += size;
  entry.items += 1;
  byCrate.set(crate, entry);
}
console.log(`| crate | bytes | share | items |`);
console.log(`| --- | ---: | ---: | ---: |`);
for (const [crate, { bytes, items }] of [...byCrate].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(top))) {
  console.log(`| ${crate} | ${bytes.toLocaleString("en-US")} | ${((100 * bytes) / total).toFixed(1)}% | ${items} |`);
}
console.log(`| total, without debug info and names | ${total.toLocaleString("en-US")} | | |`);
