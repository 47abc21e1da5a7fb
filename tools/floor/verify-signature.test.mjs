// The floor harness's `verify_signature` answers as Envoy's does: a
// `VerifySignatureResult` with `result: true` for a good signature, `false`
// and an error for a bad one, BAD_ARGUMENT (null) for a message or key it
// cannot read. Run by `make test` (e2e step) with host.test.mjs.

import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { test } from "node:test";

import { encodeArguments, encodeResult, parseArguments, verifySignatureFunction } from "./verify-signature.mjs";

const text = Buffer.from("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0");
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const spki = (pair) => pair.publicKey.export({ format: "der", type: "spki" });

function call(args) {
  const { call: verifySignature, stats } = verifySignatureFunction();
  const answer = verifySignature(encodeArguments(args));
  assert.equal(stats.calls, 1);
  return answer;
}

test("a good RS256 signature answers result: true, and nothing else", () => {
  const signature = sign("sha256", text, rsa.privateKey);

  const answer = call({ hashFunction: "sha256", publicKey: spki(rsa), signature, text });

  assert.deepEqual([...answer], [0x08, 0x01]);
});

test("a signature with one bit flipped answers result: false with Envoy's error", () => {
  const signature = sign("sha256", text, rsa.privateKey);
  signature[signature.length - 1] ^= 1;

  const answer = call({ hashFunction: "sha256", publicKey: spki(rsa), signature, text });

  assert.deepEqual(answer, encodeResult(false, "Failed to verify digest. Error code: 0"));
  assert.equal(answer[0], 0x12); // field 2 (error), length-delimited; result (false) left out
});

test("an ECDSA key takes a DER signature and refuses JWS r || s", () => {
  const der = sign("sha256", text, ec.privateKey);
  const raw = sign("sha256", text, { key: ec.privateKey, dsaEncoding: "ieee-p1363" });

  assert.deepEqual(call({ hashFunction: "sha256", publicKey: spki(ec), signature: der, text }), encodeResult(true));
  assert.deepEqual(
    call({ hashFunction: "sha256", publicKey: spki(ec), signature: raw, text }),
    encodeResult(false, "Failed to verify digest. Error code: 0"),
  );
});

test("the hash is the one named: a SHA-256 signature checked as SHA-384 fails, an unknown hash is named", () => {
  const signature = sign("sha256", text, rsa.privateKey);

  assert.deepEqual(
    call({ hashFunction: "sha384", publicKey: spki(rsa), signature, text }),
    encodeResult(false, "Failed to verify digest. Error code: 0"),
  );
  assert.deepEqual(
    call({ hashFunction: "md5", publicKey: spki(rsa), signature, text }),
    encodeResult(false, "md5 is not supported."),
  );
});

test("a message, or a key, it cannot read is BAD_ARGUMENT", () => {
  const signature = sign("sha256", text, rsa.privateKey);
  const good = encodeArguments({ hashFunction: "sha256", publicKey: spki(rsa), signature, text });
  const { call: verifySignature } = verifySignatureFunction();

  assert.equal(verifySignature(good.subarray(0, good.length - 1)), null); // cut short
  assert.equal(verifySignature(Uint8Array.from([0x0d, 0, 0, 0, 0])), null); // a wire type it never uses
  assert.equal(verifySignature(encodeArguments({ hashFunction: "sha256", publicKey: new Uint8Array(), signature, text })), null);
  assert.equal(
    verifySignature(encodeArguments({ hashFunction: "sha256", publicKey: Uint8Array.from([0x30, 3, 1, 2, 3]), signature, text })),
    null,
  );
});

test("arguments round-trip through the protobuf wire format", () => {
  const args = { hashFunction: "sha512", publicKey: spki(rsa), signature: new Uint8Array(300).fill(7), text };

  const parsed = parseArguments(encodeArguments(args));

  assert.equal(parsed.hashFunction, "sha512");
  assert.deepEqual(Buffer.from(parsed.publicKey), Buffer.from(args.publicKey));
  assert.deepEqual(Buffer.from(parsed.signature), Buffer.from(args.signature));
  assert.deepEqual(Buffer.from(parsed.text), text);
  assert.equal(parsed.publicKeyPem, "");
});
