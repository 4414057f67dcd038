// The hot-path metrics must be indistinguishable from prom-client's own to whoever scrapes them:
// the same observations through both give the same exposition text, default labels included.
import { expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "../../src/shared/hot-metrics";
import { Metrics } from "../../src/shared/metrics";

const BUCKETS = [0.001, 0.01, 0.1, 1];
const observations: Array<[{ path: string }, number]> = [
  [{ path: "remote" }, 0.0004],
  [{ path: "remote" }, 0.001],
  [{ path: "local" }, 0.05],
  [{ path: "remote" }, 0.7],
  [{ path: "remote" }, 42],
  [{ path: "local" }, 0.0099],
];

/** Exemplars are not used here; prom-client lists the key empty, ours leaves it out. */
const withoutExemplars = (metrics: Array<{ values: Array<Record<string, unknown>> }>) =>
  metrics.map((metric) => ({ ...metric, values: metric.values.map(({ exemplar: _, ...value }) => value) }));

function registries() {
  const [ours, theirs] = [new Registry(), new Registry()];
  for (const registry of [ours, theirs]) registry.setDefaultLabels({ service: "chat" });
  return { ours, theirs };
}

test("a hot histogram renders as prom-client's Histogram with the same observations", async () => {
  const { ours, theirs } = registries();
  const hot = new HotHistogram(ours, "call_seconds", "Call time", ["path"], BUCKETS);
  const reference = new Histogram({
    name: "call_seconds",
    help: "Call time",
    labelNames: ["path"],
    buckets: BUCKETS,
    registers: [theirs],
  });
  for (const [labels, value] of observations) {
    hot.observe(labels, value);
    reference.observe(labels, value);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
});

test("a hot counter renders as prom-client's Counter; reset empties both", async () => {
  const { ours, theirs } = registries();
  const hot = new HotCounter(ours, "calls_total", "Calls", ["outcome", "path"]);
  const reference = new Counter({
    name: "calls_total",
    help: "Calls",
    labelNames: ["outcome", "path"],
    registers: [theirs],
  });
  for (const [outcome, path] of [
    ["ok", "remote"],
    ["ok", "remote"],
    ["deadline_exceeded", "local"],
    ["ok", "local"],
  ]) {
    hot.inc({ outcome: outcome!, path: path! });
    reference.inc({ outcome: outcome!, path: path! });
  }
  hot.inc({ outcome: "ok", path: "remote" }, 3);
  reference.inc({ outcome: "ok", path: "remote" }, 3);
  expect(await ours.metrics()).toBe(await theirs.metrics());
  ours.resetMetrics();
  theirs.resetMetrics();
  expect(await ours.metrics()).toBe(await theirs.metrics());
});

test("label values that only differ in how they would join stay separate series", async () => {
  const { ours } = registries();
  const hot = new HotCounter(ours, "pairs_total", "Pairs", ["a", "b"]);
  hot.inc({ a: "x", b: "yz" });
  hot.inc({ a: "xy", b: "z" });
  const text = await ours.metrics();
  expect(text).toContain('pairs_total{a="x",b="yz",service="chat"} 1');
  expect(text).toContain('pairs_total{a="xy",b="z",service="chat"} 1');
});

test("the platform's Metrics hands out one hot metric per name, shared by its users", () => {
  const metrics = new Metrics();
  const first = metrics.hotCounter("shared_total", "Shared", ["where"]);
  expect(metrics.hotCounter("shared_total", "Shared", ["where"])).toBe(first);
  expect(metrics.hotHistogram("shared_seconds", "Shared", [], [1])).toBe(
    metrics.hotHistogram("shared_seconds", "Shared", [], [1]),
  );
});
