// footprint.mjs reads a module's function bodies and places a profile's Wasm
// frames in them. Run by `make test`: node --test tools/floor/footprint.test.mjs

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { functionBodies, functionsSeen } from "./footprint.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
// Written by `cargo run -p kfauth-bench --bin empty-filter` (make test does it first).
const probe = readFileSync(join(root, "target/bench/probe-wide-code.wasm"));

test("every function body of a module is found, back to back, inside the module", () => {
  const bodies = functionBodies(probe);
  // The empty filter's seven callbacks, the 256 wide functions and the one calling them.
  assert.equal(bodies.length, 7 + 256 + 1);
  for (const [index, [start, end]] of bodies.entries()) {
    assert.ok(start < end && end <= probe.length);
    if (index > 0) assert.ok(start > bodies[index - 1][1]);
  }
});

test("Wasm frames count, each function once, placed by its body's offset; with `under`, only those beneath it", () => {
  const bodies = functionBodies(probe);
  const frame = (id, functionName, url, columnNumber, children = []) => ({
    id,
    callFrame: { functionName, url, lineNumber: 0, columnNumber },
    children,
  });
  const profile = {
    nodes: [
      frame(1, "(root)", "", -1, [2, 5]),
      frame(2, "request", "file:///host.mjs", 10, [3, 4]),
      frame(3, "f", "wasm://wasm/probe", bodies[10][0], [6]),
      frame(4, "g", "wasm://wasm/probe", bodies[20][0]),
      frame(5, "start", "wasm://wasm/probe", bodies[30][0]),
      frame(6, "f again", "wasm://wasm/probe", bodies[10][0]),
    ],
  };
  const sorted = (set) => [...set].sort((a, b) => a - b);
  assert.deepEqual(sorted(functionsSeen(profile, bodies)), [10, 20, 30]);
  assert.deepEqual(sorted(functionsSeen(profile, bodies, "request")), [10, 20]);
});
