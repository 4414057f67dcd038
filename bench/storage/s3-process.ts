// The S3 REST server (test/storage/s3-server.ts) in a process of its own, so the benchmark's client
// and service do not share its event loop: prints `{"endpoint": ...}` once listening, stops on SIGTERM.
import { startS3Server } from "../../test/storage/s3-server";

const server = await startS3Server("bench");
console.log(JSON.stringify({ endpoint: server.endpoint, bucket: server.bucket }));
process.on("SIGTERM", async () => {
  await server.close();
  process.exit(0);
});
