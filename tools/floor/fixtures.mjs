// What the floor harness feeds a filter: an RS256-2048 or ES256 issuer (node:crypto),
// its tokens, kfauth's configuration as `make bench` writes it, and a request
// as a browser session reaches Kubeflow's ingress gateway.

import { createHash, generateKeyPairSync, sign } from "node:crypto";

import { HeaderMap } from "./host.mjs";

export const ISSUER = "https://bench.kfauth.local";
export const AUDIENCE = "kubeflow";

const base64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** A signing key and its JWKS document: RS256 (RSA-2048) or ES256 (P-256). */
export function makeIssuer(alg = "RS256") {
  const { privateKey, publicKey } =
    alg === "ES256"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  const kid = createHash("sha256").update(JSON.stringify(jwk)).digest("base64url").slice(0, 16);
  const key =
    alg === "ES256" ? { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y } : { kty: "RSA", n: jwk.n, e: jwk.e };
  const jwks = JSON.stringify({ keys: [{ ...key, kid, alg, use: "sig" }] });
  return { alg, privateKey, kid, jwks };
}

/**
 * A signed token with the claims Dex puts in a Kubeflow ID token; `n` makes
 * each one distinct. `claims` overrides or adds.
 */
export function mintToken(issuer, n = 0, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: issuer.alg, kid: issuer.kid, typ: "JWT" };
  const payload = {
    iss: ISSUER,
    sub: `CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs-${n}`,
    aud: AUDIENCE,
    exp: now + 3600,
    iat: now - 10,
    nonce: `n-${n}`,
    at_hash: "Ws5nTkK1bWMv6o2lq4LZbQ",
    c_hash: "BvYzVdO2tRyBSCBzy1wOvg",
    email: `user${n}@example.com`,
    email_verified: true,
    groups: ["kubeflow-user-example-com", "team-a", "team-b"],
    name: `User ${n}`,
    ...claims,
  };
  const text = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  // JWS ECDSA signatures are r || s (RFC 7518 section 3.4), not DER.
  const signature = sign("sha256", Buffer.from(text), { key: issuer.privateKey, dsaEncoding: "ieee-p1363" });
  return `${text}.${base64url(signature)}`;
}

/** kfauth's pluginConfig as `make bench` runs it; `floor` skips every path. */
export function kfauthConfig(issuer, { floor = false } = {}) {
  const config = {
    jwtRules: [
      {
        issuer: ISSUER,
        audiences: [AUDIENCE],
        jwks: issuer.jwks,
        outputClaimToHeaders: [
          { header: "kubeflow-userid", claim: "email" },
          { header: "kubeflow-groups", claim: "groups" },
        ],
      },
    ],
    requireJwt: true,
  };
  if (floor) config.skipPaths = ["^/"];
  return JSON.stringify(config);
}

/**
 * A browser request to the Pipelines UI's API as it reaches kfauth in the
 * gateway: Envoy's pseudo-headers and x-forwarded-*, the browser's headers,
 * oauth2-proxy's session cookie (`oauth2_proxy_kubeflow`, about 4 KiB, one
 * part: oauth2-proxy splits above 4,000 bytes) and the ID token it injected
 * as `Authorization` (ext_authz runs before kfauth).
 */
export function kubeflowRequest(token, { path = null, extra = [] } = {}) {
  const session = Buffer.alloc(2990, 7).toString("base64url"); // 3,987 characters
  return new HeaderMap([
    [":authority", "kubeflow.example.com"],
    [":path", path ?? "/pipeline/apis/v2beta1/runs?page_size=10&sort_by=created_at%20desc&namespace=kubeflow-user-example-com"],
    [":method", "GET"],
    [":scheme", "https"],
    ["user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"],
    ["accept", "application/json, text/plain, */*"],
    ["accept-language", "en-US,en;q=0.9"],
    ["accept-encoding", "gzip, deflate, br, zstd"],
    ["referer", "https://kubeflow.example.com/pipeline/"],
    ["sec-ch-ua", '"Chromium";v="131", "Not_A Brand";v="24"'],
    ["sec-ch-ua-mobile", "?0"],
    ["sec-ch-ua-platform", '"Linux"'],
    ["sec-fetch-site", "same-origin"],
    ["sec-fetch-mode", "cors"],
    ["sec-fetch-dest", "empty"],
    ["cookie", `oauth2_proxy_kubeflow=${session}; _xsrf=2|a1b2c3d4|0123456789abcdef0123456789abcdef|1733400000`],
    ["x-forwarded-for", "10.244.0.1"],
    ["x-forwarded-proto", "https"],
    ["x-envoy-external-address", "10.244.0.1"],
    ["x-request-id", "2d3c9f5e-8f61-4a7b-9a53-0c2f9d7e6b41"],
    ["authorization", `Bearer ${token}`],
    ...extra,
  ]);
}

/** The request `make bench` sends (wrk: a path, Host and the token), as Envoy hands it to its filters. */
export function benchRequest(token) {
  return new HeaderMap([
    [":authority", "127.0.0.1:8080"],
    [":path", "/"],
    [":method", "GET"],
    [":scheme", "http"],
    ["authorization", `Bearer ${token}`],
    ["x-forwarded-proto", "http"],
    ["x-request-id", "2d3c9f5e-8f61-4a7b-9a53-0c2f9d7e6b41"],
  ]);
}
