// `bun bench/jwt`: RS256 sign and verify per second with jose on Bun, against node:crypto doing the
// bare RSA-SHA256 operation on the same key (the floor any JWT library pays), in one run.
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from "node:crypto";
import { cpus } from "node:os";
import { importPKCS8, importSPKI, jwtVerify, SignJWT } from "jose";
import { publicKeysFromPem } from "../../src/shared/auth/key-ring";
import { generateRsaPemPair } from "../../src/shared/auth/keygen";
import { SessionRevocations, withRevocations } from "../../src/shared/auth/revocations";
import { createTokenVerifier } from "../../src/shared/auth/verifier";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const CONCURRENCY = 64;

/** Runs `op` for SECONDS with `inFlight` concurrent calls; returns operations per second. */
async function rate(op: () => Promise<unknown> | unknown, inFlight: number): Promise<number> {
  for (let i = 0; i < 50; i++) await op(); // warm-up
  let count = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      await op();
      count++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / ((performance.now() - started) / 1000);
}

const { privatePem, publicPem } = await generateRsaPemPair();
const [entry] = await publicKeysFromPem(publicPem);
const privateKey = await importPKCS8(privatePem, "RS256");
const publicKey = await importSPKI(publicPem, "RS256");
const nodePrivate = createPrivateKey(privatePem);
const nodePublic = createPublicKey(publicPem);
const now = Math.floor(Date.now() / 1000);
const signJose = () =>
  new SignJWT({ tier: "pro", sid: "s" })
    .setProtectedHeader({ alg: "RS256", kid: entry!.kid, typ: "JWT" })
    .setSubject("user")
    .setIssuer("adiuva-auth")
    .setAudience("adiuva-api")
    .setIssuedAt(now)
    .setExpirationTime(now + 900)
    .setJti(crypto.randomUUID())
    .sign(privateKey);
const token = await signJose();
const [header, payload, signature] = token.split(".") as [string, string, string];
const signingInput = Buffer.from(`${header}.${payload}`);
const rawSignature = Buffer.from(signature, "base64url");
const verifier = createTokenVerifier({
  source: { kind: "pem", pem: publicPem },
  issuer: "adiuva-auth",
  audience: "adiuva-api",
  maxLifetimeS: 900,
});
// What every service runs: the verifier plus the revoked-session lookup, with 10,000 sessions revoked.
const revocations = new SessionRevocations({ bus: new MemoryBus(), keys: createKeys("bench"), logger: silentLogger() });
await revocations.revoke(
  Array.from({ length: 10_000 }, () => crypto.randomUUID()),
  Date.now() + 3_600_000,
);
const platformVerifier = withRevocations(verifier, revocations);

const rows: Array<[string, number, number]> = [];
for (const [name, op] of [
  ["sign: jose SignJWT", signJose],
  ["sign: node:crypto RSA-SHA256 (floor)", () => nodeSign("sha256", signingInput, nodePrivate)],
  [
    "verify: jose jwtVerify",
    () => jwtVerify(token, publicKey, { algorithms: ["RS256"], issuer: "adiuva-auth", audience: "adiuva-api" }),
  ],
  ["verify: createTokenVerifier (jose + kid + claims)", () => verifier.verify(token)],
  ["verify: + revoked-session check (10k revoked)", () => platformVerifier.verify(token)],
  ["verify: node:crypto RSA-SHA256 (floor)", () => nodeVerify("sha256", signingInput, nodePublic, rawSignature)],
] as Array<[string, () => unknown]>) {
  rows.push([name, await rate(op, 1), await rate(op, CONCURRENCY)]);
}

console.log(
  `RS256 (2048-bit), Bun ${Bun.version}, ${cpus().length} cores, ${SECONDS}s per cell, ${new Date().toISOString().slice(0, 10)}`,
);
console.log(`| operation | ops/s, 1 in flight | ops/s, ${CONCURRENCY} in flight |`);
console.log("|---|---:|---:|");
for (const [name, one, many] of rows) console.log(`| ${name} | ${Math.round(one)} | ${Math.round(many)} |`);
const ratio = (a: string, b: string, column: 1 | 2) =>
  (rows.find((row) => row[0] === a)![column] / rows.find((row) => row[0] === b)![column]).toFixed(2);
console.log(
  `\njose sign / node floor: ${ratio("sign: jose SignJWT", "sign: node:crypto RSA-SHA256 (floor)", 1)}x; ` +
    `our verify / node floor: ${ratio("verify: createTokenVerifier (jose + kid + claims)", "verify: node:crypto RSA-SHA256 (floor)", 1)}x (1 in flight); ` +
    `with the revocation check / without: ${ratio("verify: + revoked-session check (10k revoked)", "verify: createTokenVerifier (jose + kid + claims)", 1)}x`,
);
await revocations.close();
