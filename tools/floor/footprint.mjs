// How much of a module's code one request runs: the Wasm functions a V8 CPU
// profile of a case's timed requests saw (`FLOOR_PROFILE=DIR make floor`
// writes one per case, sampled every 20 µs, warm-up left out), and their
// bodies' bytes in the module. A function that ran too briefly to be sampled
// is missed, and a sampled one counts whole, so this estimates the code a
// request touches (BENCHMARKS "Where the microseconds go, in Envoy": in
// Envoy that code is cold at every request).
//
//   node tools/floor/footprint.mjs MODULE.wasm DIR/CASE.cpuprofile ...

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Each function body's [start, end) byte offsets in the module, in order. */
export function functionBodies(bytes) {
  let at = 8; // magic and version
  const leb = () => {
    let value = 0;
    let shift = 0;
    let byte;
    do {
      byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  };
  const bodies = [];
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = leb();
    const end = at + size;
    if (id === 10) {
      for (let count = leb(); count > 0; count--) {
        const length = leb();
        bodies.push([at, at + length]);
        at += length;
      }
    }
    at = end;
  }
  return bodies;
}

/**
 * The bodies (by index) a profile's Wasm frames fall in; with `under`, only
 * frames with a function of that name below them on the stack.
 */
export function functionsSeen(profile, bodies, under = null) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const beneath = (id) => {
    if (under === null) return true;
    for (let at = id; at !== undefined; at = parents.get(at)) if (nodes.get(at).callFrame.functionName === under) return true;
    return false;
  };
  // V8 places a Wasm frame by its function body's offset in the module (after the body's size).
  const bodyAt = (offset) => bodies.findIndex(([start]) => offset === start);
  const seen = new Set();
  for (const node of profile.nodes) {
    if (!node.callFrame.url.startsWith("wasm://") || !beneath(node.id)) continue;
    const index = bodyAt(node.callFrame.columnNumber);
    if (index >= 0) seen.add(index);
  }
  return seen;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [module, ...profiles] = process.argv.slice(2);
  const bodies = functionBodies(readFileSync(module));
  const total = bodies.reduce((sum, [start, end]) => sum + end - start, 0);
  for (const file of profiles) {
    const seen = functionsSeen(JSON.parse(readFileSync(file, "utf8")), bodies);
    const bytes = [...seen].reduce((sum, index) => sum + bodies[index][1] - bodies[index][0], 0);
    console.log(`${file}: ${seen.size} functions ran, ${bytes.toLocaleString("en-US")} bytes of Wasm code (module: ${bodies.length} functions, ${total.toLocaleString("en-US")} bytes)`);
  }
}
