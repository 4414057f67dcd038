import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { exportPKCS8, exportSPKI, generateKeyPair } from "jose";

export interface PemKeyPair {
  privatePem: string;
  publicPem: string;
}

/** A fresh RS256 key pair as PEM (PKCS#8 private, SPKI public). */
export async function generateRsaPemPair(): Promise<PemKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  return { privatePem: await exportPKCS8(privateKey), publicPem: await exportSPKI(publicKey) };
}

/** 32 random bytes, base64: the master key that wraps users' encryption keys. */
export function generateMasterKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
}

/**
 * Writes the key files an installation needs unless they exist (never overwrites a key).
 * Returns the paths it created.
 */
export async function ensureKeyFiles(dir: string): Promise<{ created: string[]; paths: KeyPaths }> {
  const paths = keyPaths(dir);
  const created: string[] = [];
  mkdirSync(dir, { recursive: true });
  if (!existsSync(paths.privateKey) || !existsSync(paths.publicKey)) {
    const pair = await generateRsaPemPair();
    writeSecret(paths.privateKey, pair.privatePem);
    writeFileSync(paths.publicKey, pair.publicPem, { mode: 0o644 });
    created.push(paths.privateKey, paths.publicKey);
  }
  if (!existsSync(paths.masterKey)) {
    writeSecret(paths.masterKey, `${generateMasterKey()}\n`);
    created.push(paths.masterKey);
  }
  // Empty until a rotation puts the next or previous public key in it (docs/key-rotation.md):
  // Compose mounts it as a secret, so it must exist.
  if (!existsSync(paths.extraPublicKeys)) {
    writeFileSync(paths.extraPublicKeys, "", { mode: 0o644 });
    created.push(paths.extraPublicKeys);
  }
  return { created, paths };
}

/**
 * The PostgreSQL password of a Compose deployment (the `postgres_password` secret), random and
 * URL-safe, unless the file exists. Returns its path when it created it.
 */
export function ensureDatabasePassword(dir: string): string | undefined {
  const path = `${dir}/postgres_password`;
  if (existsSync(path)) return undefined;
  writeSecret(path, Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url"));
  return path;
}

/**
 * The chat service's key for per-plugin pseudonyms (PLUGIN_PSEUDONYM_KEY_FILE, the
 * `plugin_pseudonym_key` secret): 32 random bytes as base64url (43 characters, the file must hold
 * at least 32), unless the file exists, since a new key changes every user's pseudonym with every
 * plugin. Returns its path when it created it.
 */
export function ensurePluginPseudonymKey(dir: string): string | undefined {
  const path = pluginPseudonymKeyPath(dir);
  if (existsSync(path)) return undefined;
  writeSecret(path, `${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}\n`);
  return path;
}

export const pluginPseudonymKeyPath = (dir: string) => `${dir}/plugin_pseudonym.key`;

export interface KeyPaths {
  privateKey: string;
  publicKey: string;
  /** Public keys accepted beside the signing key, any number of PEM blocks (none outside a rotation). */
  extraPublicKeys: string;
  masterKey: string;
}

export function keyPaths(dir: string): KeyPaths {
  return {
    privateKey: `${dir}/jwt_private.pem`,
    publicKey: `${dir}/jwt_public.pem`,
    extraPublicKeys: `${dir}/jwt_extra_public.pem`,
    masterKey: `${dir}/master.key`,
  };
}

function writeSecret(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  // Readable by the service user only; Compose mounts these as secrets.
  writeFileSync(path, content, { mode: 0o600 });
}
