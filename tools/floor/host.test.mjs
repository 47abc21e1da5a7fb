// The floor harness's host calls do what Envoy's do, shown on the built
// kfauth.wasm: a bad token gets kfauth's 401 local reply, a good one its
// identity headers, a skipped path loses the identity headers a client sent.
// Run by `make test` (e2e step): node --test tools/floor/host.test.mjs

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Action, HeaderMap, MapType, ROOT_CONTEXT_ID, Vm, parsePairs, serializePairs } from "./host.mjs";
import { benchRequest, kfauthConfig, kubeflowRequest, makeIssuer, mintToken } from "./fixtures.mjs";
import { verifySignatureFunction } from "./verify-signature.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const wasmPath = process.env.KFAUTH_WASM ?? join(root, "target/wasm32-wasip1/release/kfauth.wasm");

/** The newest modification time under `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

// Like the testkit: a module older than src/ would test yesterday's code.
const built = statSync(wasmPath, { throwIfNoEntry: false });
if (!built) throw new Error(`${wasmPath} is missing: run make build`);
if (!process.env.KFAUTH_WASM && built.mtimeMs < newest(join(root, "src"))) {
  throw new Error(`${wasmPath} is older than src/: run make build`);
}
const kfauth = new WebAssembly.Module(readFileSync(wasmPath));
const issuer = makeIssuer();

function started(config, options = {}) {
  const vm = new Vm(kfauth, options);
  assert.equal(vm.start({ pluginConfiguration: config }), true, JSON.stringify(vm.logs));
  return vm;
}

test("a token with a bad signature gets the 401 local reply, its reason word and one log line", () => {
  const vm = started(kfauthConfig(issuer));
  const good = mintToken(issuer, 1);
  const forged = `${good.slice(0, good.lastIndexOf(".") + 1)}${Buffer.alloc(256, 1).toString("base64url")}`;
  const logsBefore = vm.logs.length;
  const request = kubeflowRequest(forged);

  assert.equal(vm.request(request), Action.pause);

  assert.equal(vm.localReply.status, 401);
  assert.deepEqual(JSON.parse(vm.localReply.body), { code: 401, reason: "signature_invalid" });
  assert.equal(
    new HeaderMap(vm.localReply.headers).get("www-authenticate"),
    'Bearer realm="kfauth", error="invalid_token"',
  );
  const lines = vm.logs.slice(logsBefore).filter((line) => line.message.includes("signature_invalid"));
  assert.equal(lines.length, 1);
  assert.equal(vm.metric("kfauth.jwt.denied.signature_invalid"), 1n);
  assert.deepEqual([...vm.unimplemented], []);
});

test("contexts created ahead of their headers each go to their root; ids kfauth never saw change nothing", () => {
  // Envoy creates a request's context as it hands over the headers; a host
  // that creates several first must still have each request checked.
  const vm = started(kfauthConfig(issuer));
  const ex = vm.exports;
  const headers = (id, request) => {
    vm.maps.set(MapType.requestHeaders, request);
    vm.effective = id;
    vm.localReply = null;
    return ex.proxy_on_request_headers(id, request.size, 1);
  };
  for (const id of [100, 101, 102]) ex.proxy_on_context_create(id, ROOT_CONTEXT_ID);
  const first = kubeflowRequest(mintToken(issuer, 1));
  const second = kubeflowRequest(mintToken(issuer, 2));
  assert.equal(headers(101, second), Action.continue);
  assert.deepEqual(second.getAll("kubeflow-userid"), ["user2@example.com"]);
  assert.equal(headers(100, first), Action.continue);
  assert.deepEqual(first.getAll("kubeflow-userid"), ["user1@example.com"]);
  for (const id of [100, 101, 102]) ex.proxy_on_delete(id);

  // Headers for a context never created: refused, never passed unchecked.
  const stray = kubeflowRequest(mintToken(issuer, 3));
  assert.equal(headers(555, stray), Action.pause);
  assert.equal(vm.localReply.status, 503);
  // Callbacks for ids kfauth does not know: ignored, no trap.
  ex.proxy_on_delete(556);
  ex.proxy_on_tick(557);
  ex.proxy_on_http_call_response(558, 1, 0, 0, 0);
  assert.equal(ex.proxy_on_configure(559, 0), 0);
  vm.maps.delete(MapType.requestHeaders);
  vm.effective = ROOT_CONTEXT_ID;

  // The VM goes on as before.
  const after = kubeflowRequest(mintToken(issuer, 4));
  assert.equal(vm.request(after), Action.continue);
  assert.deepEqual(after.getAll("kubeflow-userid"), ["user4@example.com"]);
});

test("a good token continues with its identity headers, the client's copies and the token removed", () => {
  const vm = started(kfauthConfig(issuer));
  const request = kubeflowRequest(mintToken(issuer, 7), {
    extra: [
      ["kubeflow-userid", "mallory@example.com"],
      ["kubeflow-groups", "cluster-admins"],
    ],
  });

  assert.equal(vm.request(request), Action.continue);

  assert.equal(vm.localReply, null);
  assert.deepEqual(request.getAll("kubeflow-userid"), ["user7@example.com"]);
  assert.deepEqual(request.getAll("kubeflow-groups"), ["kubeflow-user-example-com,team-a,team-b"]);
  assert.equal(request.get("authorization"), undefined);
  assert.equal(request.get(":path"), kubeflowRequest("x").get(":path"));
  assert.equal(vm.metric("kfauth.jwt.allowed"), 1n);

  // The same token again: answered from the cache, the same headers.
  request.reset();
  assert.equal(vm.request(request), Action.continue);
  assert.deepEqual(request.getAll("kubeflow-userid"), ["user7@example.com"]);
  assert.equal(vm.metric("kfauth.jwt.allowed"), 2n);
  assert.deepEqual([...vm.unimplemented], []);
});

test("a browser's Cookie loses the session with one replace, and two Cookie lines are removed first", () => {
  const vm = started(kfauthConfig(issuer));
  const token = mintToken(issuer, 1);
  const headerCalls = (request) => {
    const calls = vm.countCalls(() => assert.equal(vm.request(request), Action.continue));
    return [calls.get("proxy_remove_header_map_value") ?? 0, calls.get("proxy_replace_header_map_value") ?? 0];
  };
  const one = kubeflowRequest(token);
  // Removed: the token's header. Replaced: Cookie and the two identity headers.
  assert.deepEqual(headerCalls(one), [1, 3]);
  assert.deepEqual(one.getAll("cookie"), ["_xsrf=2|a1b2c3d4|0123456789abcdef0123456789abcdef|1733400000"]);
  const two = kubeflowRequest(token, { extra: [["cookie", "theme=dark"]] });
  assert.deepEqual(headerCalls(two), [2, 3]);
  assert.deepEqual(two.getAll("cookie"), ["_xsrf=2|a1b2c3d4|0123456789abcdef0123456789abcdef|1733400000; theme=dark"]);
});

test("an ES256 token (r || s signature) continues with its identity headers", () => {
  const ec = makeIssuer("ES256");
  const vm = started(kfauthConfig(ec));
  const request = kubeflowRequest(mintToken(ec, 3));

  assert.equal(vm.request(request), Action.continue);

  assert.equal(vm.localReply, null, JSON.stringify(vm.localReply));
  assert.deepEqual(request.getAll("kubeflow-userid"), ["user3@example.com"]);
});

test("with the host's verify_signature, kfauth passes its known-answer check and lets the host check each new token", () => {
  const foreign = verifySignatureFunction();
  const vm = started(kfauthConfig(issuer), { foreignFunctions: { verify_signature: foreign.call } });
  assert.equal(vm.metric("kfauth.signatures.host"), 1n, JSON.stringify(vm.logs));
  const good = mintToken(issuer, 11);
  const forged = `${good.slice(0, good.lastIndexOf(".") + 1)}${Buffer.alloc(256, 1).toString("base64url")}`;
  foreign.stats.calls = 0;

  const request = kubeflowRequest(good);
  assert.equal(vm.request(request), Action.continue);
  assert.deepEqual(request.getAll("kubeflow-userid"), ["user11@example.com"]);
  assert.equal(foreign.stats.calls, 1);

  assert.equal(vm.request(kubeflowRequest(forged)), Action.pause);
  assert.deepEqual(JSON.parse(vm.localReply.body), { code: 401, reason: "signature_invalid" });
  assert.equal(foreign.stats.calls, 2);
  assert.deepEqual([...vm.unimplemented], []);
});

test("without verify_signature, kfauth's known-answer check fails and it checks signatures itself", () => {
  const vm = started(kfauthConfig(issuer));

  assert.equal(vm.metric("kfauth.signatures.host"), 0n);
  assert.ok(vm.logs.some((line) => line.message.includes("known-answer check")), JSON.stringify(vm.logs));
  assert.equal(vm.request(kubeflowRequest(mintToken(issuer, 12))), Action.continue);
});

test("a skipped path (the floor) continues without a token, and loses the identity headers the client sent", () => {
  const vm = started(kfauthConfig(issuer, { floor: true }));
  const request = kubeflowRequest("not-a-token", { extra: [["kubeflow-userid", "mallory@example.com"]] });

  assert.equal(vm.request(request), Action.continue);

  assert.equal(vm.localReply, null);
  assert.equal(request.get("kubeflow-userid"), undefined);
  assert.deepEqual([...vm.unimplemented], []);
});

test("the session's debug line is made only while the host writes debug lines, as it says on a tick", () => {
  const vm = started(kfauthConfig(issuer));
  const token = mintToken(issuer, 1);
  const debugLines = () => {
    const calls = vm.countCalls(() => assert.equal(vm.request(kubeflowRequest(token)), Action.continue));
    const lines = vm.logs.filter((line) => line.message.includes("session: removed"));
    vm.logs.length = 0;
    return [calls.get("proxy_log") ?? 0, lines.length];
  };
  // Envoy's default level (info): not even handed over.
  assert.deepEqual(debugLines(), [0, 0]);
  vm.logLevel = 1; // debug, seen on the next tick
  assert.deepEqual(debugLines(), [0, 0]);
  vm.tick();
  assert.deepEqual(debugLines(), [1, 1]);
  vm.logLevel = 2;
  vm.tick();
  assert.deepEqual(debugLines(), [0, 0]);
  assert.equal(vm.metric("kfauth.session.cookie_stripped"), 4n);
});

test("a configuration kfauth cannot read is refused with a line naming the field", () => {
  const vm = new Vm(kfauth);

  assert.equal(vm.start({ pluginConfiguration: JSON.stringify({ jwtRules: [{ issuer: 5 }] }) }), false);

  assert.ok(vm.logs.some((line) => line.message.includes("jwtRules")), JSON.stringify(vm.logs));
});

test("header maps cross the ABI in its serialized form and edit as Envoy's do", () => {
  const pairs = [
    [":path", "/"],
    ["x-a", "1"],
    ["x-a", "2"],
    ["é", "ü"],
  ];
  assert.deepEqual(parsePairs(serializePairs(pairs)), pairs);
  assert.equal(parsePairs(serializePairs(pairs).subarray(0, 20)), null);

  const map = new HeaderMap(pairs);
  map.replace("x-a", "3");
  map.add("x-b", "4");
  map.remove(":path");
  assert.deepEqual(map.pairs, [
    ["x-a", "3"],
    ["é", "ü"],
    ["x-b", "4"],
  ]);
  assert.deepEqual(parsePairs(map.toSerialized()), map.pairs);
  map.reset();
  assert.deepEqual(map.pairs, pairs);
});

// make bench's replay probes (bench/src/empty_filter.rs, written to target/bench
// by `cargo run -p kfauth-bench --bin empty-filter`) stand for kfauth's host
// calls in Envoy: kfauth less the replay is kfauth's own Wasm. That holds only
// while they make kfauth's calls, in its order, with its arguments.
const probe = (name) => {
  const path = join(root, "target/bench", `${name}.wasm`);
  if (!statSync(path, { throwIfNoEntry: false })) throw new Error(`${path} is missing: run cargo run -p kfauth-bench --bin empty-filter`);
  return new WebAssembly.Module(readFileSync(path));
};

/** What one request crosses and leaves: its calls in order, the properties set, the headers after. */
function traced(vm, request) {
  const { sequence, propertiesSet } = vm.traceCalls(() => assert.equal(vm.request(request), Action.continue));
  return { sequence, propertiesSet, headers: request.pairs };
}

for (const [name, floor] of [
  ["probe-replay-floor", true],
  ["probe-replay-cached", false],
]) {
  test(`${name} makes kfauth's host calls for make bench's request, in order and with its arguments`, () => {
    // make bench's token: user0, groups team-a and team-b.
    const token = mintToken(issuer, 0, { groups: ["team-a", "team-b"] });
    const vm = started(kfauthConfig(issuer, { floor }));
    vm.request(benchRequest(token)); // the token verified once: the next request is the cached one
    const replay = new Vm(probe(name));
    assert.equal(replay.start({ pluginConfiguration: "" }), true);

    const expected = traced(vm, benchRequest(token));
    const actual = traced(replay, benchRequest(token));

    // kfauth's allocator is entered once, for the header map; the probe's hands out one address.
    assert.deepEqual(actual.sequence, expected.sequence);
    assert.deepEqual(actual.propertiesSet, expected.propertiesSet);
    assert.deepEqual(actual.headers, expected.headers);
    assert.ok(expected.sequence.includes("proxy_get_header_map_pairs"));
  });
}

test("probe-replay-minimal leaves make bench's request as kfauth does, with only the header calls", () => {
  const token = mintToken(issuer, 0, { groups: ["team-a", "team-b"] });
  const vm = started(kfauthConfig(issuer));
  vm.request(benchRequest(token));
  const replay = new Vm(probe("probe-replay-minimal"));
  assert.equal(replay.start({ pluginConfiguration: "" }), true);

  const expected = traced(vm, benchRequest(token));
  const actual = traced(replay, benchRequest(token));

  assert.deepEqual(actual.headers, expected.headers);
  assert.deepEqual(actual.propertiesSet, []);
  assert.deepEqual(
    actual.sequence.filter((call) => !call.startsWith("vm entry")),
    ["proxy_get_header_map_pairs", "proxy_remove_header_map_value", "proxy_replace_header_map_value", "proxy_replace_header_map_value"],
  );
});

test("probe-replay-fresh makes kfauth's host calls for a token it has never seen, the host verifying", () => {
  const token = mintToken(issuer, 0, { groups: ["team-a", "team-b"] });
  const vm = started(kfauthConfig(issuer), { foreignFunctions: { verify_signature: verifySignatureFunction().call } });
  const replay = new Vm(probe("probe-replay-fresh"), { foreignFunctions: { verify_signature: verifySignatureFunction().call } });
  assert.equal(replay.start({ pluginConfiguration: "" }), true);

  const expected = traced(vm, benchRequest(token));
  const actual = traced(replay, benchRequest(token));

  // The same calls; the signature, key and text differ (the probe's are make bench's key's over 900 bytes).
  assert.deepEqual(actual.sequence, expected.sequence);
  assert.ok(expected.sequence.includes("proxy_call_foreign_function"));
  assert.deepEqual(actual.propertiesSet, expected.propertiesSet);
  assert.deepEqual(actual.headers, expected.headers);
});
