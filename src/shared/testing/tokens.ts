import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { calculateJwkThumbprint, exportJWK, importPKCS8, importSPKI, SignJWT } from "jose";
import { generateMasterKey, generateRsaPemPair } from "../auth/keygen";
import { ACCESS_TOKEN_ALG, type TokenPolicy } from "../auth/verifier";
import type { Tier } from "../tiers";

export interface TestKeys {
  dir: string;
  privateKeyFile: string;
  publicKeyFile: string;
  masterKeyFile: string;
  /** The chat service's key for per-plugin pseudonyms (PLUGIN_PSEUDONYM_KEY_FILE). */
  pluginPseudonymKeyFile: string;
  kid: string;
  privatePem: string;
  publicPem: string;
}

let cached: Promise<TestKeys> | undefined;

/** One RS256 key pair per test process, written to files the services read like mounted secrets. */
export function testKeys(): Promise<TestKeys> {
  cached ??= (async () => {
    const pair = await generateRsaPemPair();
    const dir = `${tmpdir()}/adiuva-test-keys-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    const files = {
      privateKeyFile: `${dir}/jwt_private.pem`,
      publicKeyFile: `${dir}/jwt_public.pem`,
      masterKeyFile: `${dir}/master.key`,
      pluginPseudonymKeyFile: `${dir}/plugin_pseudonym.key`,
    };
    writeFileSync(files.privateKeyFile, pair.privatePem);
    writeFileSync(files.publicKeyFile, pair.publicPem);
    writeFileSync(files.masterKeyFile, generateMasterKey());
    writeFileSync(files.pluginPseudonymKeyFile, generateMasterKey());
    const kid = await calculateJwkThumbprint(await exportJWK(await importSPKI(pair.publicPem, ACCESS_TOKEN_ALG)));
    return { dir, ...files, kid, ...pair };
  })();
  return cached;
}

/** The token policy of a deployment on the default configuration, as the test services run. */
export const TEST_TOKEN_POLICY: TokenPolicy = { issuer: "adiuva-auth", audience: "adiuva-api", maxLifetimeS: 900 };

export interface SignOptions {
  issuer?: string;
  audience?: string;
  expiresInS?: number;
  jti?: string;
  kid?: string;
  /** The `sid` claim: the auth session the token belongs to. */
  sessionId?: string;
}

/** Signs an access token the way the auth service does, for tests of the other services. */
export async function signTestToken(userId: string, tier: Tier, options: SignOptions = {}): Promise<string> {
  const keys = await testKeys();
  const key = await importPKCS8(keys.privatePem, ACCESS_TOKEN_ALG);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tier, ...(options.sessionId ? { sid: options.sessionId } : {}) })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid: options.kid ?? keys.kid, typ: "JWT" })
    .setSubject(userId)
    .setIssuer(options.issuer ?? TEST_TOKEN_POLICY.issuer)
    .setAudience(options.audience ?? TEST_TOKEN_POLICY.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInS ?? TEST_TOKEN_POLICY.maxLifetimeS))
    .setJti(options.jti ?? crypto.randomUUID())
    .sign(key);
}
