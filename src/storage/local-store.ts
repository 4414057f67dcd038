import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ServiceError } from "../shared/errors";
import { attachment, type CompletedPart, type ObjectStore, type SignedRequest, type StoredPart } from "./object-store";

/** What a local URL allows: one method on one key (one part of one upload), until `exp`. */
interface Grant {
  m: "GET" | "PUT";
  k: string;
  /** Multipart: the upload and the part number. */
  u?: string;
  p?: number;
  /** Downloads: the name and type the response carries. */
  n?: string;
  t?: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;

export const refusedUrl = () => new ServiceError("invalid_signature", 403, "the URL is not valid or has expired");

/**
 * Embedded mode: objects in a directory, and the storage service itself answering the signed
 * URLs (`<prefix>/local/<token>`), so a client uploads and downloads exactly as it does with S3:
 * a PUT of the bytes, a GET, each on a URL that is HMAC-signed, bound to one key (and part) and
 * short lived. The signing key is made at start and never leaves the process: embedded mode is
 * one process, and a restart only voids URLs a client asks for again.
 */
export class LocalObjectStore implements ObjectStore {
  readonly kind = "local";
  private readonly signingKey = crypto.getRandomValues(new Uint8Array(32));
  private readonly objectsDir: string;
  private readonly uploadsDir: string;

  constructor(
    dir: string,
    readonly partSize: number,
    /** The path under which the service answers local URLs (`/storage/local`). */
    private readonly routePath: string,
  ) {
    this.objectsDir = join(dir, "objects");
    this.uploadsDir = join(dir, "multipart");
  }

  async presignPut(key: string, options: { expiresIn: number; origin: string }): Promise<SignedRequest> {
    return {
      url: this.url(options.origin, { m: "PUT", k: key, exp: expiry(options.expiresIn) }),
      method: "PUT",
      headers: {},
    };
  }

  async presignGet(
    key: string,
    options: { expiresIn: number; origin: string; filename: string; contentType: string },
  ): Promise<SignedRequest> {
    const grant: Grant = {
      m: "GET",
      k: key,
      n: options.filename,
      t: options.contentType,
      exp: expiry(options.expiresIn),
    };
    return { url: this.url(options.origin, grant), method: "GET", headers: {} };
  }

  async createMultipart(): Promise<string> {
    const uploadId = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
    await mkdir(join(this.uploadsDir, uploadId), { recursive: true });
    return uploadId;
  }

  async presignPart(
    key: string,
    uploadId: string,
    partNumber: number,
    options: { expiresIn: number; origin: string },
  ): Promise<SignedRequest> {
    const grant: Grant = { m: "PUT", k: key, u: uploadId, p: partNumber, exp: expiry(options.expiresIn) };
    return { url: this.url(options.origin, grant), method: "PUT", headers: {} };
  }

  async listParts(_key: string, uploadId: string): Promise<StoredPart[]> {
    const dir = this.uploadDir(uploadId);
    const names = await readdir(dir).catch(() => [] as string[]);
    const parts: StoredPart[] = [];
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      const path = join(dir, name);
      parts.push({ partNumber: Number(name), size: (await stat(path)).size, etag: await etagOf(path) });
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    const dir = this.uploadDir(uploadId);
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${uploadId}.tmp`;
    const writer = Bun.file(temporary).writer();
    try {
      for (const part of parts) {
        const path = join(dir, String(part.partNumber));
        if ((await etagOf(path).catch(() => "")) !== part.etag) {
          throw new ServiceError("invalid_part", 422, `part ${part.partNumber} is missing or its ETag differs`);
        }
        writer.write(await Bun.file(path).bytes());
        await writer.flush();
      }
      await writer.end();
      await rename(temporary, target);
    } catch (error) {
      await writer.end();
      await rm(temporary, { force: true });
      throw error;
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abortMultipart(_key: string, uploadId: string): Promise<void> {
    await rm(this.uploadDir(uploadId), { recursive: true, force: true });
  }

  async size(key: string): Promise<number | undefined> {
    const file = Bun.file(this.path(key));
    return (await file.exists()) ? file.size : undefined;
  }

  read(key: string): ReadableStream<Uint8Array> {
    return Bun.file(this.path(key)).stream();
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  /** A PUT on a local URL: the grant is checked, then the body (at most one part) is stored. */
  async acceptPut(token: string, body: ArrayBuffer): Promise<string> {
    const grant = this.verify(token, "PUT");
    if (body.byteLength > this.partSize) {
      throw new ServiceError("payload_too_large", 413, `a local upload takes at most ${this.partSize} bytes`);
    }
    if (grant.u !== undefined && grant.p !== undefined) {
      const dir = this.uploadDir(grant.u);
      // An aborted or completed upload has no directory left: its URLs stop working with it.
      if (!(await stat(dir).catch(() => undefined))) throw refusedUrl();
      const path = join(dir, String(grant.p));
      await writeAtomically(path, body);
      return etagOf(path);
    }
    const path = this.path(grant.k);
    await mkdir(dirname(path), { recursive: true });
    await writeAtomically(path, body);
    return etagOf(path);
  }

  /** A GET on a local URL: the object, with the name and type it was uploaded with. */
  async serveGet(token: string): Promise<Response> {
    const grant = this.verify(token, "GET");
    const file = Bun.file(this.path(grant.k));
    if (!(await file.exists())) throw new ServiceError("not_found", 404, "object not found");
    return new Response(file, {
      headers: {
        "content-type": grant.t ?? "application/octet-stream",
        "content-disposition": attachment(grant.n ?? "download"),
        "cache-control": "private, no-store",
      },
    });
  }

  private url(origin: string, grant: Grant): string {
    const payload = Buffer.from(JSON.stringify(grant)).toString("base64url");
    return `${origin}${this.routePath}/${payload}.${this.sign(payload)}`;
  }

  private sign(payload: string): string {
    return createHmac("sha256", this.signingKey).update(payload).digest("base64url");
  }

  private verify(token: string, method: Grant["m"]): Grant {
    const [payload, signature, extra] = token.split(".");
    if (!payload || !signature || extra !== undefined) throw refusedUrl();
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refusedUrl();
    const grant = parseGrant(payload);
    if (grant.m !== method || grant.exp * 1000 < Date.now()) throw refusedUrl();
    if (grant.u !== undefined && !UPLOAD_ID.test(grant.u)) throw refusedUrl();
    return grant;
  }

  private path(key: string): string {
    // Keys are made by the service (`users/<id>/<uuid>`), never by clients; refuse anything else.
    if (!/^users\/[^/]+\/[0-9a-f-]{36}$/.test(key) || key.includes("..")) throw refusedUrl();
    return join(this.objectsDir, key);
  }

  private uploadDir(uploadId: string): string {
    if (!UPLOAD_ID.test(uploadId)) throw refusedUrl();
    return join(this.uploadsDir, uploadId);
  }
}

/** The payload of a token whose signature matched: ours, but parsed defensively all the same. */
function parseGrant(payload: string): Grant {
  try {
    const grant = JSON.parse(Buffer.from(payload, "base64url").toString()) as Grant;
    if (typeof grant.k !== "string" || typeof grant.exp !== "number") throw refusedUrl();
    return grant;
  } catch {
    throw refusedUrl();
  }
}

const expiry = (seconds: number) => Math.floor(Date.now() / 1000) + seconds;

async function writeAtomically(path: string, body: ArrayBuffer): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  await Bun.write(temporary, body);
  await rename(temporary, path);
}

/** As S3 computes a part's ETag: the quoted hex MD5 of its bytes. */
async function etagOf(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("md5");
  hasher.update(await Bun.file(path).bytes());
  return `"${hasher.digest("hex")}"`;
}
