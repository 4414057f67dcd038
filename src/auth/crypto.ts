import { ConfigError, readConfigFile } from "../shared/env";

const subtle = crypto.subtle;
const WRAP_VERSION = "v1";

/**
 * The secrets auth derives from the master key: AES-256-GCM wrapping of users' encryption keys,
 * and the HMAC key that derives a refresh token's successor from the token itself (so a replay
 * inside the grace window can be answered with the same successor while only hashes are stored).
 */
export interface AuthSecrets {
  wrapKey: CryptoKey;
  successorKey: CryptoKey;
}

export async function loadAuthSecrets(masterKeyFile: string | undefined): Promise<AuthSecrets> {
  if (!masterKeyFile) throw new ConfigError("invalid configuration: MASTER_KEY_FILE must be set for the auth service");
  const raw = Buffer.from(readConfigFile("MASTER_KEY_FILE", masterKeyFile).trim(), "base64");
  if (raw.length !== 32) throw new ConfigError("invalid configuration: MASTER_KEY_FILE must hold base64 of 32 bytes");
  const hkdf = await subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
  const derive = (info: string, algorithm: AesKeyGenParams | HmacKeyGenParams, usages: KeyUsage[]) =>
    subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: new TextEncoder().encode(info) },
      hkdf,
      algorithm,
      false,
      usages,
    );
  return {
    wrapKey: await derive("adiuva/auth/user-key-wrap", { name: "AES-GCM", length: 256 }, ["encrypt", "decrypt"]),
    successorKey: await derive("adiuva/auth/refresh-successor", { name: "HMAC", hash: "SHA-256", length: 256 }, [
      "sign",
    ]),
  };
}

/** A fresh 256-bit user key. */
export const newUserKey = (): Uint8Array<ArrayBuffer> => crypto.getRandomValues(new Uint8Array(32));

/** Wraps a user key; the user id is authenticated data, so a wrapped key moved to another row fails to open. */
export async function wrapUserKey(secrets: AuthSecrets, userId: string, key: Uint8Array<ArrayBuffer>): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(userId) },
    secrets.wrapKey,
    key,
  );
  return `${WRAP_VERSION}:${Buffer.from(iv).toString("base64")}:${Buffer.from(sealed).toString("base64")}`;
}

export async function unwrapUserKey(secrets: AuthSecrets, userId: string, wrapped: string): Promise<Uint8Array> {
  const [version, iv, sealed] = wrapped.split(":");
  if (version !== WRAP_VERSION || !iv || !sealed) throw new Error("unknown wrapped key format");
  const key = await subtle.decrypt(
    { name: "AES-GCM", iv: Buffer.from(iv, "base64"), additionalData: new TextEncoder().encode(userId) },
    secrets.wrapKey,
    Buffer.from(sealed, "base64"),
  );
  return new Uint8Array(key);
}

const base64url = (bytes: ArrayBuffer | Uint8Array) => Buffer.from(new Uint8Array(bytes)).toString("base64url");

/** Refresh tokens: 256 random bits, prefixed so they are recognisable in a leak scan. */
export const newRefreshToken = (): string => `art_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;

/** The successor of a refresh token: deterministic for whoever holds the token and the key, unguessable otherwise. */
export async function successorOf(secrets: AuthSecrets, token: string): Promise<string> {
  return `art_${base64url(await subtle.sign("HMAC", secrets.successorKey, new TextEncoder().encode(token)))}`;
}

/** What is stored: SHA-256 suffices, the tokens carry 256 bits of entropy. */
export const hashToken = (token: string): string => new Bun.CryptoHasher("sha256").update(token).digest("base64url");

/** A short stable digest for keys and logs (e-mail addresses, IPs never appear raw in Redis). */
export const digest = (value: string): string =>
  new Bun.CryptoHasher("sha256").update(value).digest("base64url").slice(0, 22);
