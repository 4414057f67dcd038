import type { StorageContext } from "./context";
import { storeCall } from "./uploads";

export type Verdict = "ok" | "size_mismatch" | "checksum_mismatch";

/**
 * Checks the stored object against the declared size (the store's HEAD, before reading anything)
 * and SHA-256 (the object streamed once through the hash, in constant memory). S3-compatible
 * servers differ in which upload checksums they enforce, so the service reads what was stored
 * itself; at most STORAGE_VERIFY_CONCURRENCY objects per instance at once.
 */
export async function verifyObject(ctx: StorageContext, key: string, size: number, sha256: string): Promise<Verdict> {
  const stored = await storeCall(ctx, "size", () => ctx.store.size(key));
  if (stored !== size) return "size_mismatch";
  const digest = await ctx.verifications.run(() => storeCall(ctx, "read", () => sha256Of(ctx.store.read(key))));
  return digest === sha256 ? "ok" : "checksum_mismatch";
}

export async function sha256Of(stream: ReadableStream<Uint8Array>): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  const reader = stream.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) hasher.update(next.value);
  return hasher.digest("hex");
}
