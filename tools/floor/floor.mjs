// `make floor`: the VM side of a request, in ns of CPU, for the built
// kfauth.wasm and for the empty Proxy-Wasm filter, both run in Node's V8 by
// the JavaScript host in host.mjs (no Envoy, no network).
//
//   node --no-liftoff tools/floor/floor.mjs --kfauth KFAUTH.wasm --empty EMPTY.wasm [--probes DIR]
//        [--compare NAME=OTHER.wasm ...]
//
// Cases: the empty filter; kfauth with every path skipped (its floor), on a
// Kubeflow browser request and on make bench's bare one; kfauth with a token
// it verified before (the hot path); kfauth with a token it has never seen
// (the signature: RS256-2048, and ES256); with --probes, the empty filter
// making one kind of host call eight times (bench/src/empty_filter.rs). Each case runs in a
// fresh VM: start, configure, warm up, then FLOOR_REQUESTS requests timed by
// the process's CPU time (user + system, all threads, so V8's GC and compiler
// threads count). Rounds are interleaved (each round every case, in a rotated
// order); the median of the rounds is reported with the smallest and largest.
//
// FLOOR_REQUESTS (1,000,000), FLOOR_ROUNDS (5), FLOOR_FRESH (5,000 tokens, each
// used once per round), FLOOR_CASES (empty,floor,floor-bare,cached,fresh,fresh-es256; "probes" adds
// every probe). --json FILE writes the figures. --compare adds kfauth's cases
// for another build of it, interleaved with the first: how a change moves them.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";

import { Vm } from "./host.mjs";
import { benchRequest, kfauthConfig, kubeflowRequest, makeIssuer, mintToken } from "./fixtures.mjs";

const { values: args } = parseArgs({
  options: {
    kfauth: { type: "string" },
    empty: { type: "string" },
    probes: { type: "string" },
    json: { type: "string" },
    compare: { type: "string", multiple: true, default: [] },
  },
});
if (!args.kfauth || !args.empty) {
  console.error("usage: floor.mjs --kfauth KFAUTH.wasm --empty EMPTY.wasm [--probes DIR] [--json FILE]");
  process.exit(2);
}

const number = (name, fallback) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`${name} must be a positive integer`);
    process.exit(2);
  }
  return value;
};
const REQUESTS = number("FLOOR_REQUESTS", 1_000_000);
const ROUNDS = number("FLOOR_ROUNDS", 5);
const FRESH = number("FLOOR_FRESH", 5_000);
const WARM_UP = Math.max(1, Math.floor(REQUESTS / 10));
const FRESH_WARM_UP = 200;
const selected = (process.env.FLOOR_CASES ?? "empty,floor,floor-bare,cached,fresh,fresh-es256").split(",");

const compile = (path) => new WebAssembly.Module(readFileSync(path));
const kfauth = compile(args.kfauth);
const empty = compile(args.empty);
const issuer = makeIssuer();
const token = mintToken(issuer, 0);
console.error(`minting ${FRESH + FRESH_WARM_UP} tokens for each fresh-token case`);
const freshTokens = (from, key) =>
  selected.includes(key) ? Array.from({ length: FRESH + FRESH_WARM_UP }, (_, n) => mintToken(from, n + 1)) : [];
const rsaTokens = freshTokens(issuer, "fresh");
const ecIssuer = makeIssuer("ES256");
const ecTokens = freshTokens(ecIssuer, "fresh-es256");

// A case: how to make its VM, and its requests (maps replayed by index).
const cases = [
  {
    key: "empty",
    label: "empty Wasm filter",
    module: empty,
    config: "",
    requests: [kubeflowRequest(token)],
  },
  {
    key: "floor",
    label: "kfauth, every path skipped (floor)",
    module: kfauth,
    config: kfauthConfig(issuer, { floor: true }),
    requests: [kubeflowRequest(token)],
  },
  {
    key: "floor-bare",
    label: "kfauth, every path skipped, make bench's request (no cookie)",
    module: kfauth,
    config: kfauthConfig(issuer, { floor: true }),
    requests: [benchRequest(token)],
  },
  {
    key: "cached",
    label: "kfauth, token verified before (hot path)",
    module: kfauth,
    config: kfauthConfig(issuer),
    requests: [kubeflowRequest(token)],
  },
  {
    key: "fresh",
    label: "kfauth, token never seen (RS256-2048)",
    module: kfauth,
    config: kfauthConfig(issuer),
    warmUp: rsaTokens.slice(0, FRESH_WARM_UP).map((each) => kubeflowRequest(each)),
    requests: rsaTokens.slice(FRESH_WARM_UP).map((each) => kubeflowRequest(each)),
    once: true,
  },
  {
    key: "fresh-es256",
    label: "kfauth, token never seen (ES256)",
    module: kfauth,
    config: kfauthConfig(ecIssuer),
    warmUp: ecTokens.slice(0, FRESH_WARM_UP).map((each) => kubeflowRequest(each)),
    requests: ecTokens.slice(FRESH_WARM_UP).map((each) => kubeflowRequest(each)),
    once: true,
  },
].filter((each) => selected.includes(each.key));

for (const spec of args.compare) {
  const [name, path] = spec.split("=");
  if (!name || !path) {
    console.error(`--compare takes NAME=PATH, not ${spec}`);
    process.exit(2);
  }
  const other = compile(path);
  for (const each of cases.filter((one) => one.module === kfauth)) {
    cases.push({ ...each, key: `${each.key}@${name}`, label: `${each.label} [${name}]`, module: other });
  }
}

if (args.probes && selected.includes("probes")) {
  for (const file of readdirSync(args.probes).filter((name) => /^probe-.*\.wasm$/.test(name)).sort()) {
    cases.push({
      key: basename(file, ".wasm"),
      label: `empty filter, ${basename(file, ".wasm")}`,
      module: compile(join(args.probes, file)),
      config: "",
      requests: [kubeflowRequest(token)],
    });
  }
}

/** Runs `count` requests (cycling through `maps`); the number that did not continue. */
function drive(vm, maps, count) {
  let refused = 0;
  const length = maps.length;
  for (let index = 0; index < count; index++) {
    const map = maps[index % length];
    map.reset();
    if (vm.request(map) !== 0 || vm.localReply !== null) refused++;
  }
  return refused;
}

function measure(each) {
  const vm = new Vm(each.module);
  if (!vm.start({ pluginConfiguration: each.config })) throw new Error(`${each.key}: the module refused its configuration`);
  const count = each.once ? each.requests.length : REQUESTS;
  drive(vm, each.warmUp ?? each.requests, each.once ? each.warmUp.length : WARM_UP);
  const cpu = process.cpuUsage();
  const wall = process.hrtime.bigint();
  const refused = drive(vm, each.requests, count);
  const wallNs = Number(process.hrtime.bigint() - wall);
  const used = process.cpuUsage(cpu);
  if (refused > 0) throw new Error(`${each.key}: ${refused} of ${count} requests did not continue`);
  if (vm.unimplemented.size > 0) throw new Error(`${each.key}: called ${[...vm.unimplemented]}`);
  // What one request crossed: host calls and VM entries, counted on one more.
  const probe = each.requests[0];
  probe.reset();
  each.calls ??= vm.countCalls(() => vm.request(probe));
  return { cpuNs: ((used.user + used.system) * 1000) / count, wallNs: wallNs / count };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const results = new Map(cases.map((each) => [each.key, { cpu: [], wall: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  const order = cases.map((_, index) => cases[(index + round) % cases.length]);
  for (const each of order) {
    const { cpuNs, wallNs } = measure(each);
    results.get(each.key).cpu.push(cpuNs);
    results.get(each.key).wall.push(wallNs);
    console.error(`round ${round + 1}/${ROUNDS} ${each.key}: ${cpuNs.toFixed(0)} ns CPU, ${wallNs.toFixed(0)} ns wall`);
  }
}

const summary = cases.map((each) => {
  const { cpu, wall } = results.get(each.key);
  const middle = median(cpu);
  return {
    key: each.key,
    label: each.label,
    requests: each.once ? each.requests.length : REQUESTS,
    cpuNs: middle,
    minNs: Math.min(...cpu),
    maxNs: Math.max(...cpu),
    spread: (Math.max(...cpu) - Math.min(...cpu)) / middle,
    wallNs: median(wall),
    calls: Object.fromEntries(each.calls ?? []),
  };
});

const ns = (value) => Math.round(value).toLocaleString("en-US");
console.log(
  `Node ${process.version} (V8 ${process.versions.v8}), flags ${process.execArgv.join(" ") || "(none)"}; ` +
    `median of ${ROUNDS} interleaved rounds, process CPU time per request`,
);
console.log("");
console.log("| case | requests per round | ns/request (median) | min | max | spread | wall ns/request |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const row of summary) {
  console.log(
    `| ${row.label} | ${row.requests.toLocaleString("en-US")} | **${ns(row.cpuNs)}** | ${ns(row.minNs)} | ${ns(row.maxNs)} | ${(row.spread * 100).toFixed(1)}% | ${ns(row.wallNs)} |`,
  );
}
const byKey = new Map(summary.map((row) => [row.key, row]));
const difference = (a, b, what) => {
  if (byKey.has(a) && byKey.has(b)) console.log(`- ${what}: ${ns(byKey.get(a).cpuNs - byKey.get(b).cpuNs)} ns`);
};
console.log("");
difference("floor", "empty", "kfauth's floor over the empty filter");
difference("floor", "floor-bare", "the Kubeflow request's headers (4 KiB cookie, browser headers) over make bench's");
difference("cached", "floor", "a cached token over the floor");
difference("fresh", "cached", "a never-seen token over a cached one");
for (const spec of args.compare) {
  const name = spec.split("=")[0];
  for (const row of summary.filter((one) => one.key.endsWith(`@${name}`))) {
    difference(row.key, row.key.split("@")[0], `${name} on ${row.key.split("@")[0]}`);
  }
}
console.log("");
console.log("Host calls and VM entries in one request:");
console.log("");
for (const row of summary) {
  const calls = Object.entries(row.calls)
    .map(([name, times]) => `${name.replace("vm entry: ", "→")} ×${times}`)
    .join(", ");
  console.log(`- ${row.key}: ${calls}`);
}
if (args.json) writeFileSync(args.json, JSON.stringify({ node: process.version, v8: process.versions.v8, rounds: ROUNDS, summary }, null, 2));
