// Devices for bench/capacity/connections.ts, in a process of their own so the devices' file
// descriptors do not count against the server's (or the driver's) limit.
// `bun connection-clients.ts <port> <token file> <first token> <tokens>`. Each stdin line
// "hold <n>" opens devices (hello with the next tokens of this process's slice, the way the SDK
// does) until n are open, then answers {"holding": n}; "close" closes them all and exits. Every
// open device sends the SDK's heartbeat (`ping`) every `heartbeat_s` of its welcome.
import { readFileSync } from "node:fs";

const [port, tokenFile, first, slice] = process.argv.slice(2);
const tokens = (JSON.parse(readFileSync(tokenFile!, "utf8")) as string[]).slice(
  Number(first),
  Number(first) + Number(slice),
);
// The gateway lets one IP hold 32 sockets not yet welcomed (DEVICE_MAX_PENDING_PER_IP); every
// device here comes from 127.0.0.1, so the client processes together stay under that.
const BATCH = 8;
const open: WebSocket[] = [];
const heartbeats: Array<ReturnType<typeof setInterval>> = [];
let closedByServer = 0;
let refusedUpgrades = 0;

/** One device; an upgrade refused for too many pending sockets of this IP is tried again. */
async function openDevice(token: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await tryDevice(token);
    } catch (error) {
      if (!(error instanceof Refused) || attempt >= 50) throw error;
      refusedUpgrades++;
      await Bun.sleep(20);
    }
  }
}

class Refused extends Error {}

function tryDevice(token: string): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws/device`);
  return new Promise<void>((resolve, reject) => {
    ws.onopen = () =>
      ws.send(JSON.stringify({ type: "hello", token, device_id: "d", tools: ["task_list"], protocol: 1 }));
    ws.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as { type: string; heartbeat_s?: number };
      if (frame.type !== "welcome") return;
      open.push(ws);
      const periodMs = (frame.heartbeat_s ?? 15) * 1000;
      // Phases spread over the period, as a fleet of devices that connected at different times.
      setTimeout(() => {
        ws.send('{"type":"ping"}');
        heartbeats.push(setInterval(() => ws.send('{"type":"ping"}'), periodMs));
      }, Math.random() * periodMs);
      resolve();
    };
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
    });
    ws.onclose = (event) => {
      if (!opened) return reject(new Refused(`upgrade refused (${event.code})`));
      closedByServer++;
      reject(new Error(`device closed ${event.code} ${event.reason}`));
    };
  });
}

async function hold(count: number): Promise<void> {
  while (open.length < Math.min(count, tokens.length)) {
    const from = open.length;
    const to = Math.min(count, tokens.length, from + BATCH);
    await Promise.all(tokens.slice(from, to).map((token) => openDevice(token)));
  }
}

console.log(JSON.stringify({ ready: true }));
for await (const line of console) {
  const [command, argument] = line.trim().split(" ");
  if (command === "hold") {
    try {
      await hold(Number(argument));
      console.log(JSON.stringify({ holding: open.length, closedByServer, refusedUpgrades }));
    } catch (error) {
      console.log(JSON.stringify({ error: (error as Error).message, holding: open.length }));
    }
  } else if (command === "close") {
    for (const timer of heartbeats) clearInterval(timer);
    for (const ws of open) ws.close();
    break;
  }
}
process.exit(0);
