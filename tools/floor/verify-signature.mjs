// Envoy's `verify_signature` foreign function, in JavaScript on Node's
// crypto, so the floor harness can run kfauth's host-signature path.
//
// As Envoy 1.40 does it (envoyproxy/envoy source/extensions/common/wasm/foreign.cc
// and source/common/crypto/utility_impl.cc): the argument is a serialized
// `VerifySignatureArguments` (1 hash_function, 2 public_key as DER
// SubjectPublicKeyInfo, 3 signature, 4 text, 5 public_key_pem); RSA keys
// verify with PKCS#1 v1.5, EC keys take a DER signature; the answer is a
// `VerifySignatureResult` (1 result, 2 error), and a message or key that
// cannot be read is BAD_ARGUMENT (null here).
// Node's crypto is OpenSSL, not BoringSSL: the answers are the same, the
// times are not Envoy's. Envoy imports the key on every call; this host keeps
// each imported key (OpenSSL 3's import costs more than its verify), so its
// share of a request is small and the VM's side, what is left, measurable.

import { createPublicKey, verify } from "node:crypto";

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const HASHES = new Set(["sha1", "sha224", "sha256", "sha384", "sha512"]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One varint at `at`: [value, next offset], or null when cut short or over 64 bits. */
function varint(bytes, at) {
  let value = 0n;
  for (let shift = 0n; shift < 64n && at < bytes.length; shift += 7n) {
    const byte = bytes[at++];
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, at];
  }
  return null;
}

/** The fields of a `VerifySignatureArguments`, or null when the bytes are not one. */
export function parseArguments(bytes) {
  const fields = { hashFunction: "", publicKey: null, signature: null, text: null, publicKeyPem: "" };
  const names = { 1: "hashFunction", 2: "publicKey", 3: "signature", 4: "text", 5: "publicKeyPem" };
  let at = 0;
  while (at < bytes.length) {
    const key = varint(bytes, at);
    if (key === null) return null;
    at = key[1];
    const field = Number(key[0] >> 3n);
    const type = Number(key[0] & 7n);
    if (type === VARINT) {
      const skipped = varint(bytes, at);
      if (skipped === null) return null;
      at = skipped[1];
    } else if (type === LENGTH_DELIMITED) {
      const length = varint(bytes, at);
      if (length === null || length[1] + Number(length[0]) > bytes.length) return null;
      const value = bytes.subarray(length[1], length[1] + Number(length[0]));
      at = length[1] + Number(length[0]);
      const name = names[field];
      if (name === "hashFunction" || name === "publicKeyPem") fields[name] = decoder.decode(value);
      else if (name) fields[name] = value;
    } else {
      return null;
    }
  }
  return fields;
}

function lengthDelimited(field, bytes) {
  const out = [(field << 3) | LENGTH_DELIMITED];
  let length = bytes.length;
  while (length >= 0x80) {
    out.push((length & 0x7f) | 0x80);
    length >>>= 7;
  }
  out.push(length, ...bytes);
  return out;
}

/** A serialized `VerifySignatureResult`; proto3 leaves out `false` and "". */
export function encodeResult(result, error = "") {
  const out = result ? [(1 << 3) | VARINT, 1] : [];
  if (error) out.push(...lengthDelimited(2, encoder.encode(error)));
  return Uint8Array.from(out);
}

/** A serialized `VerifySignatureArguments`, for tests. */
export function encodeArguments({ hashFunction, publicKey, signature, text }) {
  return Uint8Array.from([
    ...lengthDelimited(1, encoder.encode(hashFunction)),
    ...lengthDelimited(2, publicKey),
    ...lengthDelimited(3, signature),
    ...lengthDelimited(4, text),
  ]);
}

/**
 * The foreign function: bytes in, `VerifySignatureResult` bytes out, or null
 * (BAD_ARGUMENT). `stats` adds up the calls and the process CPU µs they took
 * (the whole call: parse, key, verify, answer), so that a benchmark can tell
 * the signature from the VM's side of the request.
 */
export function verifySignatureFunction() {
  const stats = { calls: 0, cpuUs: 0 };
  const keys = new Map(); // the key's DER or PEM, as text -> KeyObject
  const call = (bytes) => {
    const started = process.cpuUsage();
    try {
      return answer(bytes, keys);
    } finally {
      const used = process.cpuUsage(started);
      stats.calls++;
      stats.cpuUs += used.user + used.system;
    }
  };
  return { call, stats };
}

function importKey(args, keys) {
  const hasDer = args.publicKey !== null && args.publicKey.length > 0;
  // Envoy refuses a call with both keys or neither.
  if (hasDer === Boolean(args.publicKeyPem)) return null;
  const id = hasDer ? Buffer.from(args.publicKey).toString("latin1") : args.publicKeyPem;
  let key = keys.get(id);
  if (key === undefined) {
    try {
      key = hasDer
        ? createPublicKey({ key: Buffer.from(args.publicKey), format: "der", type: "spki" })
        : createPublicKey(args.publicKeyPem);
    } catch {
      return null;
    }
    keys.set(id, key);
  }
  return key;
}

function answer(bytes, keys) {
  const args = parseArguments(bytes);
  if (args === null) return null;
  const key = importKey(args, keys);
  if (key === null) return null;
  const hash = args.hashFunction.toLowerCase();
  if (!HASHES.has(hash)) return encodeResult(false, `${args.hashFunction} is not supported.`);
  let valid = false;
  try {
    valid = verify(hash, args.text ?? new Uint8Array(), key, args.signature ?? new Uint8Array());
  } catch {
    valid = false;
  }
  return valid ? encodeResult(true) : encodeResult(false, "Failed to verify digest. Error code: 0");
}
