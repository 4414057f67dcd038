// Shared setup for storage tests: the real service on a real PostgreSQL and Redis, its objects on a
// real S3 REST server (s3-server.ts) or in a local directory (embedded mode), the embedding model the
// fake OpenAI-compatible server (bag-of-words vectors, so similar words score close).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestContext, type PlatformOverrides, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";
import { createStorageService } from "../../src/storage";
import { startS3Server } from "./s3-server";

export const newUserId = () => crypto.randomUUID();

export const sha256Hex = (data: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

/** Deterministic bytes of a given length, different for each seed. */
export function bytesOf(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(length);
  let state = seed * 2654435761;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return data;
}

export interface Call {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  redirect?: RequestRedirect;
}

export type Backend = "s3" | "local";

export async function startStorage(backend: Backend = "s3", overrides: PlatformOverrides = {}) {
  const ctx: TestContext = await createTestContext();
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  const env: Record<string, string> = { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" };
  if (backend === "s3") {
    const s3 = await startS3Server();
    ctx.defer(() => s3.close());
    Object.assign(env, s3.env);
  } else {
    const dir = mkdtempSync(join(tmpdir(), "storage-local-"));
    ctx.defer(() => rmSync(dir, { recursive: true, force: true }));
    env.DATA_DIR = dir;
  }
  const server = await ctx.start([createStorageService], {
    ...overrides,
    service: "storage",
    env: { ...env, ...overrides.env },
  });
  const base = `${server.url}/api/v1/storage`;

  const call = async (method: string, path: string, options: Call = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] ??= "application/json";
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    }
    const response = await fetch(`${base}${path}`, { method, headers, body, redirect: options.redirect ?? "manual" });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
    const json: any = text ? JSON.parse(text) : undefined;
    return { status: response.status, body: json, headers: response.headers };
  };

  const token = (userId: string, tier: Tier = "free") => ctx.token(userId, tier);

  /** Starts an upload of `data` (nothing PUT yet): the API's answer. */
  const start = (userToken: string, data: Uint8Array<ArrayBuffer>, name = "file.bin") =>
    call("POST", "/uploads", {
      token: userToken,
      body: { name, size: data.byteLength, sha256: sha256Hex(data), content_type: "application/octet-stream" },
    });

  /** Uploads `data` through the whole flow; `complete` is left to the caller when `complete: false`. */
  const upload = async (
    userToken: string,
    data: Uint8Array<ArrayBuffer>,
    options: { name?: string; contentType?: string; sha256?: string; size?: number; complete?: boolean } = {},
  ) => {
    const started = await call("POST", "/uploads", {
      token: userToken,
      body: {
        name: options.name ?? "file.bin",
        size: options.size ?? data.byteLength,
        sha256: options.sha256 ?? sha256Hex(data),
        content_type: options.contentType ?? "application/octet-stream",
      },
    });
    if (started.status !== 201) return { started, completed: undefined };
    const etags = await putContent(userToken, started.body, data);
    if (options.complete === false) return { started, completed: undefined, etags };
    const completed = await call("POST", `/uploads/${started.body.upload_id}/complete`, {
      token: userToken,
      body: started.body.mode === "multipart" ? { parts: etags } : {},
    });
    return { started, completed, etags };
  };

  /** PUTs the content on the presigned URL(s) an upload was given; returns the parts' ETags. */
  // biome-ignore lint/suspicious/noExplicitAny: an Upload as the API answered it
  const putContent = async (userToken: string, started: any, data: Uint8Array<ArrayBuffer>, only?: number[]) => {
    if (started.mode === "single") {
      const response = await fetch(started.url.url, { method: "PUT", body: data, headers: started.url.headers });
      if (response.status !== 200) throw new Error(`PUT ${response.status}: ${await response.text()}`);
      return [];
    }
    const numbers = only ?? Array.from({ length: started.part_count }, (_, index) => index + 1);
    const parts = await call("POST", `/uploads/${started.upload_id}/parts`, {
      token: userToken,
      body: { part_numbers: numbers },
    });
    if (parts.status !== 200) throw new Error(`parts ${parts.status}: ${JSON.stringify(parts.body)}`);
    const etags: Array<{ part_number: number; etag: string }> = [];
    for (const part of parts.body.parts) {
      const start = (part.part_number - 1) * started.part_size;
      const response = await fetch(part.url, { method: "PUT", body: data.slice(start, start + started.part_size) });
      if (response.status !== 200) throw new Error(`part PUT ${response.status}: ${await response.text()}`);
      etags.push({ part_number: part.part_number, etag: response.headers.get("etag") ?? "" });
    }
    return etags;
  };

  return { ctx, server, base, call, token, start, upload, putContent, llm, env };
}

export type Storage = Awaited<ReturnType<typeof startStorage>>;
