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
// (the signature: RS256-2048, and ES256), checked by kfauth's own code in
// Wasm, or (`-host` cases) by the host's `verify_signature` foreign function
// (verify-signature.mjs), whose own time is then reported apart; with --probes, the empty filter
// making one kind of host call eight times (bench/src/empty_filter.rs). Each case runs in a
// fresh VM: start, configure, warm up, then FLOOR_REQUESTS requests timed by
// the process's CPU time (user + system, all threads, so V8's GC and compiler
// threads count). Rounds are interleaved (each round every case, in a rotated
// order); the median of the rounds is reported with the smallest and largest.
//
// FLOOR_REQUESTS (1,000,000), FLOOR_ROUNDS (5), FLOOR_FRESH (5,000 tokens, each
// used once per round), FLOOR_EVICT (KiB of memory read between requests, 0:
// with it every case starts each request with caches holding other work, as
// in Envoy, where a request's own code and data sit between two of the
// filter's; the reading is timed too, so compare cases run with the same
// figure), FLOOR_PROFILE (a directory: a V8 CPU profile of each case's timed
// requests only, sampled every 20 µs, as CASE.cpuprofile; for
// tools/floor/footprint.mjs; the sampling inflates the times), FLOOR_CASES (empty,floor,floor-bare,cached,fresh,fresh-es256,
// fresh-host,fresh-es256-host; cached-bare and fresh-bare(-host) are the cached and a never-seen token on make bench's
// request; "probes" adds
// every probe, a probe's name that one). --json FILE writes the figures. --compare adds kfauth's cases
// for another build of it, interleaved with the first: how a change moves them. --least PATH adds
// bench/least-filter's cases least-cached-bare and least-fresh-host (select them in FLOOR_CASES).

import { createPublicKey } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";

import { Vm } from "./host.mjs";
import { verifySignatureFunction } from "./verify-signature.mjs";
import { AUDIENCE, ISSUER, benchRequest, kfauthConfig, kubeflowRequest, makeIssuer, mintToken } from "./fixtures.mjs";

const { values: args } = parseArgs({
  options: {
    kfauth: { type: "string" },
    empty: { type: "string" },
    probes: { type: "string" },
    json: { type: "string" },
    compare: { type: "string", multiple: true, default: [] },
    least: { type: "string" },
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
const EVICT_KIB = process.env.FLOOR_EVICT === undefined || process.env.FLOOR_EVICT === "0" ? 0 : number("FLOOR_EVICT", 0);
// Read one byte in each 64-byte line: enough to push a request's lines out of L1 and L2.
const evictBuffer = new Uint8Array(EVICT_KIB * 1024);
let evictSink = 0;
const evict = () => {
  let sum = 0;
  for (let at = 0; at < evictBuffer.length; at += 64) sum += evictBuffer[at];
  evictSink ^= sum;
};
const WARM_UP = Math.max(1, Math.floor(REQUESTS / 10));
const FRESH_WARM_UP = 200;
const selected = (
  process.env.FLOOR_CASES ?? "empty,floor,floor-bare,cached,fresh,fresh-es256,fresh-host,fresh-es256-host"
).split(",");

const compile = (path) => new WebAssembly.Module(readFileSync(path));
const kfauth = compile(args.kfauth);
const empty = compile(args.empty);
const issuer = makeIssuer();
const token = mintToken(issuer, 0);
console.error(`minting ${FRESH + FRESH_WARM_UP} tokens for each fresh-token case`);
const freshTokens = (from, keys) =>
  keys.some((key) => selected.includes(key))
    ? Array.from({ length: FRESH + FRESH_WARM_UP }, (_, n) => mintToken(from, n + 1))
    : [];
const rsaTokens = freshTokens(issuer, ["fresh", "fresh-host", "fresh-bare", "fresh-bare-host", "least-fresh-host"]);
const ecIssuer = makeIssuer("ES256");
const ecTokens = freshTokens(ecIssuer, ["fresh-es256", "fresh-es256-host"]);

/** A new-token case's requests: each token once, as `request` makes it, the first ones to warm up. */
const once = (tokens, request) => ({
  warmUp: tokens.slice(0, FRESH_WARM_UP).map((each) => request(each)),
  requests: tokens.slice(FRESH_WARM_UP).map((each) => request(each)),
  once: true,
});

// A case: how to make its VM, and its requests (maps replayed by index).
const wasmCases = [
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
    key: "cached-bare",
    label: "kfauth, token verified before, make bench's request (workload (a))",
    module: kfauth,
    config: kfauthConfig(issuer),
    requests: [benchRequest(token)],
  },
  {
    key: "fresh",
    label: "kfauth, token never seen (RS256-2048)",
    module: kfauth,
    config: kfauthConfig(issuer),
    ...once(rsaTokens, kubeflowRequest),
  },
  {
    key: "fresh-bare",
    label: "kfauth, token never seen (RS256-2048), make bench's request (workload (c))",
    module: kfauth,
    config: kfauthConfig(issuer),
    ...once(rsaTokens, benchRequest),
  },
  {
    key: "fresh-es256",
    label: "kfauth, token never seen (ES256)",
    module: kfauth,
    config: kfauthConfig(ecIssuer),
    ...once(ecTokens, kubeflowRequest),
  },
];
// The new-token cases again, with the host's verify_signature checking the signatures.
const hostCases = wasmCases
  .filter((each) => each.once)
  .map((each) => ({ ...each, key: `${each.key}-host`, label: `${each.label}, signature by the host's verify_signature`, host: true }));
const cases = [...wasmCases, ...hostCases].filter((each) => selected.includes(each.key));

// bench/least-filter (--least): native's job in Wasm and nothing else, on make bench's requests.
if (args.least) {
  const least = compile(args.least);
  const key = createPublicKey(issuer.privateKey).export({ type: "spki", format: "der" }).toString("base64");
  const config = JSON.stringify({ issuer: ISSUER, audience: AUDIENCE, key });
  const leastCases = [
    { key: "least-cached-bare", label: "least filter, token verified before, make bench's request", requests: [benchRequest(token)] },
    {
      key: "least-fresh-host",
      label: "least filter, token never seen, make bench's request, signature by the host's verify_signature",
      ...once(rsaTokens, benchRequest),
      host: true,
    },
  ];
  for (const each of leastCases) if (selected.includes(each.key)) cases.push({ ...each, module: least, config, least: true });
}

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

if (args.probes) {
  const wanted = (file) => selected.includes("probes") || selected.includes(basename(file, ".wasm"));
  for (const file of readdirSync(args.probes).filter((name) => /^probe-.*\.wasm$/.test(name) && wanted(name)).sort()) {
    cases.push({
      key: basename(file, ".wasm"),
      label: `empty filter, ${basename(file, ".wasm")}`,
      module: compile(join(args.probes, file)),
      config: "",
      // A replay makes kfauth's calls for make bench's request: it reads that request.
      requests: [file.startsWith("probe-replay") ? benchRequest(token) : kubeflowRequest(token)],
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
    if (EVICT_KIB > 0) evict();
    if (vm.request(map) !== 0 || vm.localReply !== null) refused++;
  }
  return refused;
}

/** A started VM for the case, and its `verify_signature` when the case has the host verify. */
function started(each) {
  // Without the foreign function kfauth's known-answer check fails, and it checks every signature itself.
  const foreign = verifySignatureFunction();
  // The least filter has no code of its own for signatures: it always asks the host.
  const vm = new Vm(each.module, { foreignFunctions: each.host || each.least ? { verify_signature: foreign.call } : {} });
  if (!vm.start({ pluginConfiguration: each.config })) throw new Error(`${each.key}: the module refused its configuration`);
  if (each.config !== "" && !each.least && vm.metric("kfauth.signatures.host") !== (each.host ? 1n : 0n)) {
    throw new Error(`${each.key}: kfauth.signatures.host is ${vm.metric("kfauth.signatures.host")}`);
  }
  return { vm, foreign };
}

// The inspector answers an in-process session's calls before `post` returns.
const profiler = process.env.FLOOR_PROFILE ? new Session() : null;
profiler?.connect();
const post = (method, params = {}) => {
  let answer;
  profiler.post(method, params, (error, result) => {
    if (error) throw error;
    answer = result;
  });
  return answer;
};

function measure(each) {
  const { vm, foreign } = started(each);
  const count = each.once ? each.requests.length : REQUESTS;
  drive(vm, each.warmUp ?? each.requests, each.once ? each.warmUp.length : WARM_UP);
  if (profiler) {
    post("Profiler.enable");
    post("Profiler.setSamplingInterval", { interval: 20 });
    post("Profiler.start");
  }
  foreign.stats.calls = 0;
  foreign.stats.cpuUs = 0;
  const cpu = process.cpuUsage();
  const wall = process.hrtime.bigint();
  const refused = drive(vm, each.requests, count);
  const wallNs = Number(process.hrtime.bigint() - wall);
  const used = process.cpuUsage(cpu);
  if (profiler) {
    const { profile } = post("Profiler.stop");
    writeFileSync(join(process.env.FLOOR_PROFILE, `${each.key}.cpuprofile`), JSON.stringify(profile));
  }
  if (refused > 0) throw new Error(`${each.key}: ${refused} of ${count} requests did not continue`);
  if (vm.unimplemented.size > 0) throw new Error(`${each.key}: called ${[...vm.unimplemented]}`);
  // What one request crossed: host calls and VM entries, counted on one more
  // (for a case whose tokens are each used once, in a VM that has not seen it).
  const probe = each.requests[0];
  probe.reset();
  const counted = each.once ? started(each).vm : vm;
  each.calls ??= counted.countCalls(() => counted.request(probe));
  if (each.host && foreign.stats.calls !== count) throw new Error(`${each.key}: ${foreign.stats.calls} host checks for ${count} requests`);
  return {
    cpuNs: ((used.user + used.system) * 1000) / count,
    wallNs: wallNs / count,
    hostNs: (foreign.stats.cpuUs * 1000) / count,
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const results = new Map(cases.map((each) => [each.key, { cpu: [], wall: [], host: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  const order = cases.map((_, index) => cases[(index + round) % cases.length]);
  for (const each of order) {
    const { cpuNs, wallNs, hostNs } = measure(each);
    const result = results.get(each.key);
    result.cpu.push(cpuNs);
    result.wall.push(wallNs);
    // The VM's side of the request: the CPU time less the time spent in the host's verify_signature.
    result.host.push(hostNs);
    const host = each.host ? `, ${hostNs.toFixed(0)} ns in verify_signature` : "";
    console.error(`round ${round + 1}/${ROUNDS} ${each.key}: ${cpuNs.toFixed(0)} ns CPU, ${wallNs.toFixed(0)} ns wall${host}`);
  }
}

const summary = cases.map((each) => {
  const { cpu, wall, host } = results.get(each.key);
  const middle = median(cpu);
  const vmSide = cpu.map((total, round) => total - host[round]);
  return {
    key: each.key,
    label: each.label,
    requests: each.once ? each.requests.length : REQUESTS,
    cpuNs: middle,
    minNs: Math.min(...cpu),
    maxNs: Math.max(...cpu),
    spread: (Math.max(...cpu) - Math.min(...cpu)) / middle,
    wallNs: median(wall),
    hostNs: each.host ? median(host) : null,
    vmSideNs: each.host ? median(vmSide) : null,
    vmSideMinNs: each.host ? Math.min(...vmSide) : null,
    vmSideMaxNs: each.host ? Math.max(...vmSide) : null,
    calls: Object.fromEntries(each.calls ?? []),
  };
});

const ns = (value) => Math.round(value).toLocaleString("en-US");
console.log(
  `Node ${process.version} (V8 ${process.versions.v8}), flags ${process.execArgv.join(" ") || "(none)"}; ` +
    `median of ${ROUNDS} interleaved rounds, process CPU time per request` +
    (EVICT_KIB > 0 ? `, ${EVICT_KIB} KiB read before each request (sink ${evictSink & 1})` : ""),
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
difference("cached-bare", "floor-bare", "a cached token over the floor, make bench's request");
difference("fresh", "cached", "a never-seen token over a cached one");
difference("fresh-host", "cached", "a never-seen token over a cached one, the host verifying (its call included)");
difference("cached-bare", "least-cached-bare", "kfauth over the least filter, a cached token, make bench's request");
difference("fresh-bare-host", "least-fresh-host", "kfauth over the least filter, a never-seen token, make bench's request, the host verifying");
const hostRows = summary.filter((row) => row.hostNs !== null);
if (hostRows.length > 0) {
  console.log("");
  console.log("With the host verifying: the request's ns less those spent inside verify_signature (the VM's side)");
  console.log("");
  console.log("| case | ns/request | in verify_signature | VM side (median) | min | max |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const row of hostRows) {
    console.log(
      `| ${row.key} | ${ns(row.cpuNs)} | ${ns(row.hostNs)} | **${ns(row.vmSideNs)}** | ${ns(row.vmSideMinNs)} | ${ns(row.vmSideMaxNs)} |`,
    );
  }
  const cached = byKey.get("cached");
  for (const row of hostRows.filter(() => cached)) {
    console.log(`- ${row.key}, VM side over a cached token: ${ns(row.vmSideNs - cached.cpuNs)} ns`);
  }
}
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
