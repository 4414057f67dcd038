// Encrypted backups of the app's local database. The app encrypts with the user's data key
// (`GET /api/v1/auth/me/encryption-key`, base64 of 32 bytes) before anything leaves the device, so
// the server and the bucket only ever hold ciphertext. WebCrypto only: Node 20+ and browsers.
import type { ApiClient } from "./api-client";
import type { components } from "./api-types";

/** The version of the format below; sent as `header_version` with each backup. */
export const BACKUP_FORMAT_VERSION = 1;
/** Plaintext bytes per encrypted chunk unless told otherwise. */
export const BACKUP_CHUNK_BYTES = 1024 * 1024;

const MAGIC = [0x41, 0x44, 0x42, 0x4b]; // "ADBK"
const HEADER_BYTES = 17; // magic 4, version 1, chunk size 4, nonce prefix 8
const TAG_BYTES = 16;

/** The user's data key: its base64 (as the auth route answers it), its 32 bytes, or an AES-GCM CryptoKey. */
export type BackupKey = string | Uint8Array | CryptoKey;

export class BackupFormatError extends Error {
  override name = "BackupFormatError";
}

/**
 * Encrypts `data` with AES-256-GCM in chunks (the STREAM construction): a 17-byte header (magic
 * "ADBK", version, chunk size, a random 8-byte nonce prefix), then each chunk sealed with the nonce
 * `prefix || chunk index` and, as additional data, the header and a last-chunk flag. Chunks cannot
 * be reordered, dropped or the backup cut short without decryption failing.
 */
export async function encryptBackup(
  key: BackupKey,
  data: Uint8Array,
  options: { chunkBytes?: number } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const chunkBytes = options.chunkBytes ?? BACKUP_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > 0xffffffff - TAG_BYTES) {
    throw new RangeError("chunkBytes must be a positive integer");
  }
  const cryptoKey = await importKey(key);
  const header = new Uint8Array(HEADER_BYTES);
  header.set(MAGIC, 0);
  header[4] = BACKUP_FORMAT_VERSION;
  new DataView(header.buffer).setUint32(5, chunkBytes);
  header.set(crypto.getRandomValues(new Uint8Array(8)), 9);
  const chunks = Math.max(1, Math.ceil(data.byteLength / chunkBytes));
  const out = new Uint8Array(HEADER_BYTES + data.byteLength + chunks * TAG_BYTES);
  out.set(header, 0);
  let offset = HEADER_BYTES;
  for (let index = 0; index < chunks; index++) {
    const plain = data.subarray(index * chunkBytes, (index + 1) * chunkBytes);
    const sealed = await crypto.subtle.encrypt(
      params(header, index, index === chunks - 1),
      cryptoKey,
      plain as BufferSource,
    );
    out.set(new Uint8Array(sealed), offset);
    offset += sealed.byteLength;
  }
  return out;
}

/** Decrypts what `encryptBackup` made; throws BackupFormatError for anything else or anything altered. */
export async function decryptBackup(key: BackupKey, blob: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  if (blob.byteLength < HEADER_BYTES + TAG_BYTES || MAGIC.some((byte, index) => blob[index] !== byte)) {
    throw new BackupFormatError("not an encrypted backup");
  }
  const header = blob.slice(0, HEADER_BYTES);
  if (header[4] !== BACKUP_FORMAT_VERSION) throw new BackupFormatError(`unknown backup version ${header[4]}`);
  const chunkBytes = new DataView(header.buffer).getUint32(5);
  if (chunkBytes === 0) throw new BackupFormatError("invalid chunk size");
  const cryptoKey = await importKey(key);
  const sealedChunk = chunkBytes + TAG_BYTES;
  const body = blob.subarray(HEADER_BYTES);
  const chunks = Math.max(1, Math.ceil(body.byteLength / sealedChunk));
  const out = new Uint8Array(body.byteLength - chunks * TAG_BYTES);
  let offset = 0;
  for (let index = 0; index < chunks; index++) {
    const sealed = body.subarray(index * sealedChunk, (index + 1) * sealedChunk);
    if (sealed.byteLength < TAG_BYTES) throw new BackupFormatError("truncated backup");
    try {
      const plain = await crypto.subtle.decrypt(
        params(header, index, index === chunks - 1),
        cryptoKey,
        sealed as BufferSource,
      );
      out.set(new Uint8Array(plain), offset);
      offset += plain.byteLength;
    } catch {
      throw new BackupFormatError("the backup was altered, cut short, or the key is not the one it was made with");
    }
  }
  return out;
}

function params(header: Uint8Array<ArrayBuffer>, index: number, last: boolean): AesGcmParams {
  const iv = new Uint8Array(12);
  iv.set(header.subarray(9, 17), 0);
  new DataView(iv.buffer).setUint32(8, index);
  const additionalData = new Uint8Array(HEADER_BYTES + 1);
  additionalData.set(header, 0);
  additionalData[HEADER_BYTES] = last ? 1 : 0;
  return { name: "AES-GCM", iv, additionalData, tagLength: TAG_BYTES * 8 };
}

async function importKey(key: BackupKey): Promise<CryptoKey> {
  if (typeof key !== "string" && !(key instanceof Uint8Array)) return key;
  const raw = typeof key === "string" ? Uint8Array.from(atob(key), (c) => c.charCodeAt(0)) : new Uint8Array(key);
  if (raw.byteLength !== 32) throw new RangeError("the data key must be 32 bytes (AES-256)");
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

export type StoredBackup = components["schemas"]["StoredObject"];

export interface UploadBackupInput {
  key: BackupKey;
  deviceId: string;
  /** The app's database as bytes; encrypted here before upload. */
  data: Uint8Array;
  /** When the backup was made; now by default. */
  createdAt?: Date;
  chunkBytes?: number;
}

export interface TransferOptions {
  /** For the PUTs and GETs on presigned URLs; the global fetch by default. */
  fetch?: typeof fetch;
}

export class BackupTransferError extends Error {
  override name = "BackupTransferError";
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Parts asked for per request (the API takes at most 100). */
const PART_BATCH = 100;

/**
 * Encrypts and uploads a backup: `POST /api/v1/storage/backups`, the ciphertext PUT on the presigned
 * URL (or its parts on theirs), then the completion, where the service checks size and SHA-256.
 */
export async function uploadBackup(
  api: ApiClient,
  input: UploadBackupInput,
  options: TransferOptions = {},
): Promise<StoredBackup> {
  const put = options.fetch ?? fetch;
  const blob = await encryptBackup(input.key, input.data, { chunkBytes: input.chunkBytes });
  const sha256 = hex(await crypto.subtle.digest("SHA-256", blob));
  const started = await api.POST("/api/v1/storage/backups", {
    body: {
      device_id: input.deviceId,
      created_at: (input.createdAt ?? new Date()).toISOString(),
      size: blob.byteLength,
      sha256,
      header_version: BACKUP_FORMAT_VERSION,
    },
  });
  if (!started.data) throw refused("start the backup upload", started.response, started.error);
  const upload = started.data;
  const parts: Array<{ part_number: number; etag: string }> = [];
  if (upload.mode === "single" && upload.url) {
    await send(put, upload.url.url, upload.url.headers, blob);
  } else {
    for (let first = 1; first <= upload.part_count; first += PART_BATCH) {
      const numbers = range(first, Math.min(upload.part_count, first + PART_BATCH - 1));
      const urls = await api.POST("/api/v1/storage/uploads/{id}/parts", {
        params: { path: { id: upload.upload_id } },
        body: { part_numbers: numbers },
      });
      if (!urls.data) throw refused("get part URLs", urls.response, urls.error);
      for (const part of urls.data.parts) {
        const start = (part.part_number - 1) * upload.part_size;
        const etag = await send(put, part.url, part.headers, blob.subarray(start, start + upload.part_size));
        parts.push({ part_number: part.part_number, etag });
      }
    }
  }
  const completed = await api.POST("/api/v1/storage/uploads/{id}/complete", {
    params: { path: { id: upload.upload_id } },
    body: upload.mode === "multipart" && parts.every((part) => part.etag) ? { parts } : {},
  });
  if (!completed.data) throw refused("complete the backup upload", completed.response, completed.error);
  return completed.data;
}

/** Downloads a backup through its presigned URL and decrypts it: the app's database as it was. */
export async function downloadBackup(
  api: ApiClient,
  input: { id: string; key: BackupKey },
  options: TransferOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const link = await api.GET("/api/v1/storage/objects/{id}/download", {
    params: { path: { id: input.id }, query: { redirect: "false" } },
  });
  if (!link.data) throw refused("get the download URL", link.response, link.error);
  const response = await (options.fetch ?? fetch)(link.data.url);
  if (!response.ok) throw new BackupTransferError(`download failed with ${response.status}`, response.status);
  return decryptBackup(input.key, new Uint8Array(await response.arrayBuffer()));
}

async function send(
  put: typeof fetch,
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
): Promise<string> {
  const response = await put(url, { method: "PUT", headers, body: body as BodyInit });
  if (!response.ok) throw new BackupTransferError(`upload PUT failed with ${response.status}`, response.status);
  // Browsers see the ETag only if the bucket's CORS exposes it; without it the service lists the parts.
  return response.headers.get("etag") ?? "";
}

function refused(what: string, response: Response, error: unknown): BackupTransferError {
  const code = (error as { error?: { code?: string; message?: string } } | undefined)?.error;
  return new BackupTransferError(`could not ${what}: ${code?.message ?? response.status}`, response.status, code?.code);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

const hex = (buffer: ArrayBuffer) =>
  [...new Uint8Array(buffer)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
