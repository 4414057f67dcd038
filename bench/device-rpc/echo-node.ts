// The physical floor of a cross-instance call on one Redis node: what answers a call here does
// nothing but send the same text back: caller -> PUBLISH inbox -> this process -> PUBLISH reply ->
// caller. With Bun's RedisClient (the client the device RPC's lane uses on one node) or ioredis
// (the lane's client on Sentinel and Cluster), to tell which client is faster on one node.
// `bun echo-node.ts <key prefix> bun|ioredis`; prints {"ready":true} once subscribed.
import { floorClient } from "./floor-client";

const [prefix = "bench", client = "bun"] = process.argv.slice(2);
const lane = await floorClient(client === "ioredis" ? "ioredis" : "bun");
await lane.subscribe(`${prefix}:inbox`, (message) => {
  lane.publish(`${prefix}:reply`, message).catch(() => {});
});
console.log(JSON.stringify({ ready: true }));
process.on("SIGTERM", () => process.exit(0));
