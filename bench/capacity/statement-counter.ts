// The statement-counting PostgreSQL proxy of ./shared.ts in a process of its own, so the proxy's
// work neither slows nor is slowed by the process measuring. `bun statement-counter.ts <database url>`
// prints {"url"}; each stdin line "counts" answers with the counts so far; "stop" ends it.
import { startStatementCounter } from "./shared";

const counter = await startStatementCounter(process.argv[2]!);
console.log(JSON.stringify({ url: counter.url }));
for await (const line of console) {
  if (line.trim() === "stop") break;
  const { byKind, writeTransactions } = counter.counts();
  console.log(JSON.stringify({ byKind: Object.fromEntries(byKind), writeTransactions }));
}
await counter.stop();
process.exit(0);
