// `bun bench/storage/run.ts [rounds]`: upload and download throughput through the storage service's
// presigned URLs against direct PUT/GET on the same S3 server in the same run (Bun's S3 client,
// signing each request itself). The S3 server (s3rver) runs in a process of its own; the storage
// service runs here on real PostgreSQL and Redis. Sizes: 4 MiB (one presigned PUT) and 64 MiB
// (8 parts of 8 MiB, 4 at a time, as Bun's own multipart writer sends them). Reported: MiB/s median
// of the data transfer alone (presigned PUT/GET vs direct PUT/GET), and of the whole presigned
// flow (start + PUTs + completion, which reads the object once to verify its SHA-256).

import { createTestContext } from "../../src/shared/testing";
import { createStorageService } from "../../src/storage";

const rounds = Number(process.argv[2] ?? 5);
const MiB = 1024 * 1024;
const child = Bun.spawn(["bun", `${import.meta.dir}/s3-process.ts`], { stdout: "pipe", stderr: "inherit" });
const reader = child.stdout.getReader();
const first = new TextDecoder().decode((await reader.read()).value);
const { endpoint, bucket } = JSON.parse(first.trim().split("\n")[0] ?? "{}") as { endpoint: string; bucket: string };
const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
const direct = new Bun.S3Client({ endpoint, bucket, region: "us-east-1", ...credentials });

const ctx = await createTestContext();
const llm = { LLM_BASE_URL: "http://127.0.0.1:9/v1" };
const server = await ctx.start([createStorageService], {
  service: "storage",
  env: { ...llm, S3_ENDPOINT: endpoint, S3_BUCKET: bucket, S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER" },
});
const api = `${server.url}/api/v1/storage`;
const token = await ctx.token(crypto.randomUUID(), "team");
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const post = async (path: string, body: unknown) => {
  const response = await fetch(`${api}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  // biome-ignore lint/suspicious/noExplicitAny: the API's answer, read field by field
  return (await response.json()) as any;
};

const data = (size: number) => fill(size);
function fill(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  return bytes;
}
const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

/** Runs `tasks` at most `width` at a time. */
async function pooled(tasks: Array<() => Promise<unknown>>, width: number) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < tasks.length) await tasks[next++]?.();
    }),
  );
}

interface Figures {
  presignedPut: number[];
  directPut: number[];
  presignedGet: number[];
  directGet: number[];
  flow: number[];
}

async function measure(size: number): Promise<Figures> {
  const figures: Figures = { presignedPut: [], directPut: [], presignedGet: [], directGet: [], flow: [] };
  const bytes = data(size);
  for (let round = 0; round < rounds; round++) {
    // Direct: Bun's client signs and sends the PUT (multipart beyond 8 MiB, 4 parts at a time).
    const key = `direct/${crypto.randomUUID()}`;
    let started = performance.now();
    await direct.write(key, bytes, { partSize: 8 * MiB, queueSize: 4 });
    figures.directPut.push(rate(size, performance.now() - started));
    started = performance.now();
    const back = await direct.file(key).arrayBuffer();
    figures.directGet.push(rate(back.byteLength, performance.now() - started));

    // Presigned: the service hands out the URLs; the transfer alone is timed, then the whole flow.
    const flowStart = performance.now();
    const upload = await post("/uploads", { name: "bench.bin", size, sha256: sha256(bytes) });
    let transfer = 0;
    let etags: Array<{ part_number: number; etag: string }> = [];
    if (upload.mode === "single") {
      started = performance.now();
      await fetch(upload.url.url, { method: "PUT", body: bytes });
      transfer = performance.now() - started;
    } else {
      const numbers = Array.from({ length: upload.part_count }, (_, index) => index + 1);
      const parts = await post(`/uploads/${upload.upload_id}/parts`, { part_numbers: numbers });
      started = performance.now();
      etags = [];
      await pooled(
        parts.parts.map((part: { part_number: number; url: string }) => async () => {
          const from = (part.part_number - 1) * upload.part_size;
          const response = await fetch(part.url, {
            method: "PUT",
            body: bytes.subarray(from, from + upload.part_size),
          });
          etags.push({ part_number: part.part_number, etag: response.headers.get("etag") ?? "" });
        }),
        4,
      );
      transfer = performance.now() - started;
    }
    figures.presignedPut.push(rate(size, transfer));
    await post(`/uploads/${upload.upload_id}/complete`, upload.mode === "multipart" ? { parts: etags } : {});
    figures.flow.push(rate(size, performance.now() - flowStart));
    const link = await fetch(`${api}/objects/${upload.upload_id}/download?redirect=false`, { headers });
    const { url } = (await link.json()) as { url: string };
    started = performance.now();
    const got = await (await fetch(url)).arrayBuffer();
    figures.presignedGet.push(rate(got.byteLength, performance.now() - started));
    if (got.byteLength !== size) throw new Error("short download");
  }
  return figures;
}

const rows: string[] = [];
for (const size of [4 * MiB, 64 * MiB]) {
  const f = await measure(size);
  const put = median(f.presignedPut) / median(f.directPut);
  const get = median(f.presignedGet) / median(f.directGet);
  rows.push(
    `| ${size / MiB} MiB | ${median(f.presignedPut).toFixed(0)} / ${median(f.directPut).toFixed(0)} (${put.toFixed(2)}x) | ${median(f.presignedGet).toFixed(0)} / ${median(f.directGet).toFixed(0)} (${get.toFixed(2)}x) | ${median(f.flow).toFixed(0)} |`,
  );
}
console.log(`rounds: ${rounds}`);
console.log("| Size | PUT MiB/s presigned / direct | GET MiB/s presigned / direct | Whole presigned upload MiB/s |");
console.log("| ---- | ---------------------------- | ---------------------------- | ---------------------------- |");
for (const row of rows) console.log(row);
await ctx.close();
child.kill("SIGTERM");
await child.exited;
