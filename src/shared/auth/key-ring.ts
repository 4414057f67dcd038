import { type CryptoKey, calculateJwkThumbprint, exportJWK, importJWK, importPKCS8, importSPKI, type JWK } from "jose";
import { readConfigFile } from "../env";

export const SIGNING_ALG = "RS256";

/** A public verification key with its RFC 7638 thumbprint as `kid`, so no key id is ever configured by hand. */
export interface PublicKeyEntry {
  kid: string;
  key: CryptoKey;
  /** The public JWK as published in the JWKS (kty, n, e, kid, alg, use). */
  jwk: JWK;
}

export interface SigningKey {
  kid: string;
  key: CryptoKey;
}

/** Auth's keys: the one it signs with, and every key it publishes and accepts (signing key first). */
export interface KeyRing {
  signing: SigningKey;
  keys: PublicKeyEntry[];
  jwks(): { keys: JWK[] };
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g;

/** Every PEM block in a text (a file may hold several keys, like a CA bundle). */
export function pemBlocks(text: string): Array<{ label: string; pem: string }> {
  return [...text.matchAll(PEM_BLOCK)].map((match) => ({ label: match[1] ?? "", pem: match[0] }));
}

/** Comma-separated file list from one env var; blanks ignored. */
export function fileList(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/**
 * Public keys from PEM text: SPKI blocks as they are, PKCS#8 private blocks reduced to their public
 * half (auth alone may verify with nothing but its private key file). Duplicates collapse by kid.
 */
export async function publicKeysFromPem(text: string): Promise<PublicKeyEntry[]> {
  const entries = new Map<string, PublicKeyEntry>();
  for (const block of pemBlocks(text)) {
    const entry =
      block.label === "PRIVATE KEY"
        ? await publicHalf(block.pem)
        : await publicEntry(await importSPKI(block.pem, SIGNING_ALG, { extractable: true }));
    if (!entries.has(entry.kid)) entries.set(entry.kid, entry);
  }
  return [...entries.values()];
}

async function publicEntry(key: CryptoKey): Promise<PublicKeyEntry> {
  const { kty, n, e } = await exportJWK(key);
  const bare = { kty, n, e } as JWK;
  const kid = await calculateJwkThumbprint(bare);
  const verifyKey = (await importJWK({ ...bare, alg: SIGNING_ALG }, SIGNING_ALG)) as CryptoKey;
  return { kid, key: verifyKey, jwk: { ...bare, kid, alg: SIGNING_ALG, use: "sig" } };
}

async function publicHalf(privatePem: string): Promise<PublicKeyEntry> {
  const { kty, n, e } = await exportJWK(await importPKCS8(privatePem, SIGNING_ALG, { extractable: true }));
  return publicEntry(
    (await importJWK({ kty, n, e, alg: SIGNING_ALG }, SIGNING_ALG, { extractable: true })) as CryptoKey,
  );
}

/**
 * Loads auth's key ring: the private key it signs with (one PKCS#8 PEM) and extra public keys it
 * publishes beside it — the next key before a rotation, the previous one after it.
 */
export async function loadKeyRing(options: {
  privateKeyFile: string;
  extraPublicKeyFiles?: string[];
}): Promise<KeyRing> {
  const privatePem = readConfigFile("JWT_PRIVATE_KEY_FILE", options.privateKeyFile);
  const block = pemBlocks(privatePem).find((each) => each.label === "PRIVATE KEY");
  if (!block) throw new Error(`${options.privateKeyFile} holds no PKCS#8 private key`);
  const current = await publicHalf(block.pem);
  const signing = { kid: current.kid, key: await importPKCS8(block.pem, SIGNING_ALG) };
  const extras = await publicKeysFromPem(
    (options.extraPublicKeyFiles ?? []).map((file) => readConfigFile("JWT_EXTRA_PUBLIC_KEY_FILES", file)).join("\n"),
  );
  const keys = [current, ...extras.filter((entry) => entry.kid !== current.kid)];
  const published = { keys: keys.map((entry) => entry.jwk) };
  return { signing, keys, jwks: () => structuredClone(published) };
}
