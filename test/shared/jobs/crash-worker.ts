// A queue worker in its own process, so a test can SIGKILL it mid-job: prints "started <id>" when
// a job begins and then never finishes it.

import { BullJobQueue } from "../../../src/shared/jobs";
import { silentLogger } from "../../../src/shared/logger";

const [topology, prefix, name] = process.argv.slice(2) as [string, string, string];
const queue = new BullJobQueue<{ n: number }>({
  name,
  topology: JSON.parse(topology),
  prefix,
  logger: silentLogger(),
  instanceId: "doomed",
  options: { attempts: 3, backoffMs: 50, lockMs: 1000, stalledIntervalMs: 500 },
});
queue.process(
  async (job) => {
    console.log(`started ${job.id}`);
    await new Promise(() => {});
  },
  { concurrency: 1 },
);
