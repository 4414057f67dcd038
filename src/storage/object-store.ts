/** A presigned request: the URL and the headers the client must send with it. */
export interface SignedRequest {
  url: string;
  method: "GET" | "PUT";
  /** Headers bound to the signature (the client must send them as given). */
  headers: Record<string, string>;
}

export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/**
 * Where the bytes live: an S3-compatible bucket, or a local directory in embedded mode. The
 * service is never in the data path of an upload or a download: clients get signed URLs, short
 * lived and bound to one key (and, for parts, one upload and one part number).
 */
export interface ObjectStore {
  readonly kind: "s3" | "local";
  /**
   * Part size of multipart uploads; files up to it go up in one PUT. Local: no larger than the
   * service's body limit, since the service itself receives the parts.
   */
  readonly partSize: number;
  /** `origin`: where the request came from; the local store's URLs point back at the service. */
  presignPut(key: string, options: { contentType: string; expiresIn: number; origin: string }): Promise<SignedRequest>;
  presignGet(
    key: string,
    options: { expiresIn: number; origin: string; filename: string; contentType: string },
  ): Promise<SignedRequest>;
  createMultipart(key: string, contentType: string): Promise<string>;
  presignPart(
    key: string,
    uploadId: string,
    partNumber: number,
    options: { expiresIn: number; origin: string },
  ): Promise<SignedRequest>;
  /** The parts that arrived so far (S3's ListParts), in part-number order. */
  listParts(key: string, uploadId: string): Promise<StoredPart[]>;
  completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<void>;
  abortMultipart(key: string, uploadId: string): Promise<void>;
  /** The stored object's size, or undefined when there is none. */
  size(key: string): Promise<number | undefined>;
  /** The object's bytes as a stream (read once to verify it, or to index it). */
  read(key: string): ReadableStream<Uint8Array>;
  delete(key: string): Promise<void>;
}

/** Every object of a user lives under this prefix; the key is never made from client input. */
export const objectKey = (userId: string, objectId: string) => `users/${userId}/${objectId}`;

/**
 * A Content-Disposition naming the file, ASCII only: it travels inside presigned URLs
 * (`response-content-disposition`), where characters such as `'` and `*` are encoded differently by
 * different SigV4 implementations and break the signature.
 */
export function attachment(filename: string): string {
  const ascii = filename.replace(/[^A-Za-z0-9 ._()-]/g, "_");
  return `attachment; filename="${ascii}"`;
}
