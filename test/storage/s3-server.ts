// A real S3 REST server for the storage tests and bench, in this process, on a free port.
//
// Why s3rver (the @20minutes fork, 5.0.0): an S3 API implementation in Node that speaks the REST
// protocol itself, multipart uploads and presigned (query-string SigV4) URLs included, and needs no
// Docker or binary download. The fork verifies SigV4 signatures, expiry included, where the original
// s3rver 3.7.1 accepts any V4 signature: a URL whose key was changed must be refused for the
// "another user's URL" tests to mean anything.
//
// What it does not do, and what that costs the tests: no ListParts (405 MethodNotAllowed), so the
// S3 tests complete multipart uploads with the ETags the part PUTs answered and test resumption
// through the local store, which implements ListParts; it does not verify `x-amz-checksum-*`
// headers, which the service does not rely on (it hashes the stored object itself).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error the package ships no types; its constructor and run/close are all that is used.
import S3rver from "@20minutes/s3rver";

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The storage service's S3_* variables for this server. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** s3rver's built-in account; it accepts no other. */
const ACCOUNT = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export async function startS3Server(bucket = "adiuva-test"): Promise<S3Server> {
  const directory = mkdtempSync(join(tmpdir(), "s3rver-"));
  const server = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const address = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    bucket,
    ...ACCOUNT,
    env: {
      S3_ENDPOINT: endpoint,
      S3_BUCKET: bucket,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: ACCOUNT.accessKeyId,
      S3_SECRET_ACCESS_KEY: ACCOUNT.secretAccessKey,
    },
    async close() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
