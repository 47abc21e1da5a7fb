// Self time by function from a V8 CPU profile (node --cpu-prof), with Wasm
// functions named from the module's name section (a build with symbols:
// CARGO_PROFILE_RELEASE_STRIP=none). Names are demangled enough to show the
// crate: `node profile-summary.mjs FILE.cpuprofile [TOP] [UNDER]`. With UNDER
// (a function name or its start: `request`, `_ZN6kfauth6verify6decode`), only
// samples whose stack holds it count: the requests without the harness's
// token minting around them, or what one function spends.
// PROFILE_INCLUSIVE=a,b,... also prints, for each of those substrings of a
// function name, the share of samples with such a function on the stack.

import { readFileSync } from "node:fs";

const [file, top = "30", under = null] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, "utf8"));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parents = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
const beneath = (id) => {
  for (let at = id; at !== undefined; at = parents.get(at)) if (nodes.get(at).callFrame.functionName.startsWith(under)) return true;
  return false;
};
const inclusive = (process.env.PROFILE_INCLUSIVE ?? "").split(",").filter(Boolean);
const inclusiveTime = new Map();
const selfTime = new Map();
const byPart = new Map();
const part = (url) =>
  url.includes(".wasm") ? "the module (Wasm)" : url.endsWith("host.mjs") ? "the JavaScript host" : url.endsWith(".mjs") ? "the harness" : "Node, V8 and GC";
profile.samples.forEach((id, index) => {
  if (under && !beneath(id)) return;
  const frame = nodes.get(id).callFrame;
  const onStack = new Set();
  for (let at = id; at !== undefined; at = parents.get(at)) {
    const name = nodes.get(at).callFrame.functionName;
    for (const wanted of inclusive) if (name.includes(wanted)) onStack.add(wanted);
  }
  for (const wanted of onStack) inclusiveTime.set(wanted, (inclusiveTime.get(wanted) ?? 0) + (profile.timeDeltas[index] ?? 0));
  const url = frame.url.split("/").pop();
  const name = `${frame.functionName || "(anonymous)"}${url ? ` ${url}:${frame.lineNumber + 1}` : ""}`;
  const time = profile.timeDeltas[index] ?? 0;
  selfTime.set(name, (selfTime.get(name) ?? 0) + time);
  byPart.set(part(url), (byPart.get(part(url)) ?? 0) + time);
});
const total = [...selfTime.values()].reduce((sum, each) => sum + each, 0);
console.log(`${(total / 1000).toFixed(0)} ms sampled`);
for (const [name, time] of [...byPart].sort((a, b) => b[1] - a[1])) {
  console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
}
console.log("");
for (const [name, time] of [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
}
if (inclusive.length > 0) {
  console.log("");
  console.log("inclusive (on the stack):");
  for (const wanted of inclusive) {
    console.log(`${((100 * (inclusiveTime.get(wanted) ?? 0)) / total).toFixed(1).padStart(5)}%  ${wanted}`);
  }
}
