// The device RPC's deadline groups: never early, at most one grain late, one timer per group.
import { describe, expect, test } from "bun:test";
import { Deadlines } from "../../src/shared/device-rpc/deadlines";

interface Item {
  name: string;
  due?: number;
}

function recorder(grainMs = 10) {
  const fired: Array<{ name: string; at: number }> = [];
  const deadlines = new Deadlines<Item>((item) => fired.push({ name: item.name, at: performance.now() }), grainMs);
  return { fired, deadlines };
}

describe("Deadlines", () => {
  test("a deadline fires once, never before its time and at most a grain (plus timer slack) after", async () => {
    const { fired, deadlines } = recorder();
    const started = performance.now();
    deadlines.arm({ name: "a" }, 30);
    await Bun.sleep(80);
    expect(fired.map((f) => f.name)).toEqual(["a"]);
    const late = fired[0]!.at - started;
    expect(late).toBeGreaterThanOrEqual(30);
    expect(late).toBeLessThan(30 + 10 + 30);
  });

  test("a cleared deadline never fires, and clearing one leaves its group's others armed", async () => {
    const { fired, deadlines } = recorder();
    const a: Item = { name: "a" };
    const b: Item = { name: "b" };
    deadlines.arm(a, 20);
    deadlines.arm(b, 20);
    deadlines.clear(a);
    deadlines.clear(a);
    await Bun.sleep(60);
    expect(fired.map((f) => f.name)).toEqual(["b"]);
    expect(a.due).toBeUndefined();
  });

  test("arming again moves the deadline instead of adding one", async () => {
    const { fired, deadlines } = recorder();
    const item = { name: "moved" };
    const started = performance.now();
    deadlines.arm(item, 10);
    deadlines.arm(item, 60);
    await Bun.sleep(40);
    expect(fired).toEqual([]);
    await Bun.sleep(60);
    expect(fired.map((f) => f.name)).toEqual(["moved"]);
    expect(fired[0]!.at - started).toBeGreaterThanOrEqual(60);
  });

  test("many deadlines due together share one timer, released when the last is cleared", () => {
    const { deadlines } = recorder(1000);
    const items = Array.from({ length: 1000 }, (_, i) => ({ name: String(i) }));
    for (const item of items) deadlines.arm(item, 30_000);
    // A grain of 1 s: at most two groups even if the clock crossed a boundary meanwhile.
    expect(deadlines.timers).toBeLessThanOrEqual(2);
    for (const item of items) deadlines.clear(item);
    expect(deadlines.timers).toBe(0);
  });
});
