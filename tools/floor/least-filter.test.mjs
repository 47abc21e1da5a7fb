// bench/least-filter does native jwt_authn's job on make bench's requests and
// nothing else; BENCHMARKS.md ("The least filter") uses it as a bound on what
// any Wasm filter doing that job costs Envoy. The bound holds only if it does
// the job: a good token gets the claim headers, a token it must refuse a 401,
// and a token seen before no second signature check.
// Run by `make test` (e2e step): node --test tools/floor/least-filter.test.mjs

import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Action, Vm } from "./host.mjs";
import { AUDIENCE, ISSUER, benchRequest, makeIssuer, mintToken } from "./fixtures.mjs";
import { verifySignatureFunction } from "./verify-signature.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const module = new WebAssembly.Module(
  readFileSync(join(root, "target/wasm32-wasip1/release/kfauth_least_filter.wasm")),
);
const issuer = makeIssuer();

function started(from = issuer) {
  const foreign = verifySignatureFunction();
  const vm = new Vm(module, { foreignFunctions: { verify_signature: foreign.call } });
  const key = createPublicKey(from.privateKey).export({ type: "spki", format: "der" }).toString("base64");
  const config = { issuer: ISSUER, audience: AUDIENCE, alg: from.alg, key };
  assert.equal(vm.start({ pluginConfiguration: JSON.stringify(config) }), true);
  return { vm, foreign };
}

test("a good token loses its header and sets the claim headers; seen again, it is not checked again", () => {
  const { vm, foreign } = started();
  const token = mintToken(issuer, 1);
  for (const checks of [1, 1]) {
    const request = benchRequest(token);
    assert.equal(vm.request(request), Action.continue);
    assert.equal(vm.localReply, null);
    assert.deepEqual(request.getAll("authorization"), []);
    assert.deepEqual(request.getAll("kubeflow-userid"), ["user1@example.com"]);
    assert.deepEqual(request.getAll("kubeflow-groups"), ["kubeflow-user-example-com,team-a,team-b"]);
    assert.equal(foreign.stats.calls, checks);
  }
});

test("a token it must refuse gets a 401 and no claim header", () => {
  const { vm } = started();
  const good = mintToken(issuer, 2);
  const forged = `${good.slice(0, good.lastIndexOf(".") + 1)}${Buffer.alloc(256, 1).toString("base64url")}`;
  const now = Math.floor(Date.now() / 1000);
  const refused = {
    forged,
    "another audience": mintToken(issuer, 3, { aud: "someone-else" }),
    "another issuer": mintToken(issuer, 4, { iss: "https://elsewhere.example" }),
    expired: mintToken(issuer, 5, { exp: now - 10 }),
    "another key": mintToken(makeIssuer(), 6),
    "not a JWT": "abc",
  };
  for (const [what, token] of Object.entries(refused)) {
    const request = benchRequest(token);
    assert.equal(vm.request(request), Action.pause, what);
    assert.equal(vm.localReply?.status, 401, what);
    assert.deepEqual(request.getAll("kubeflow-userid"), [], what);
  }
  const bare = benchRequest(good);
  bare.remove("authorization");
  assert.equal(vm.request(bare), Action.pause);
  assert.equal(vm.localReply?.status, 401);
});

test("ES256: the JWS signature goes to the host as DER; an altered one, or an RS256 token, gets a 401", () => {
  const ecIssuer = makeIssuer("ES256");
  const { vm, foreign } = started(ecIssuer);
  // About half of 40 tokens' r and s values have their top bit set: DER puts a zero byte before those.
  for (let n = 1; n <= 40; n++) {
    const request = benchRequest(mintToken(ecIssuer, n));
    assert.equal(vm.request(request), Action.continue, `token ${n}`);
    assert.deepEqual(request.getAll("kubeflow-userid"), [`user${n}@example.com`]);
  }
  assert.equal(foreign.stats.calls, 40);
  const good = mintToken(ecIssuer, 41);
  const signature = Buffer.from(good.slice(good.lastIndexOf(".") + 1), "base64url");
  signature[5] ^= 1;
  const altered = `${good.slice(0, good.lastIndexOf(".") + 1)}${signature.toString("base64url")}`;
  for (const token of [altered, mintToken(issuer, 42)]) {
    assert.equal(vm.request(benchRequest(token)), Action.pause);
    assert.equal(vm.localReply?.status, 401);
  }
});
