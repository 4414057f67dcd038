import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "./hot-metrics";
import { withTimeout } from "./timeout";

/**
 * One registry per application instance (not prom-client's global one), so several instances can
 * live in one process: SERVICE_NAME=all in development and two chat instances in a test.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<"service" | "method" | "route" | "status">;
  readonly httpDuration: Histogram<"service" | "method" | "route" | "status">;

  constructor(options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}) {
    if (options.labels) this.registry.setDefaultLabels(options.labels);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = this.counter("http_requests_total", "HTTP requests handled", [
      "service",
      "method",
      "route",
      "status",
    ]);
    this.httpDuration = new Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request latency",
      labelNames: ["service", "method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
  }

  counter<L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Counter<L>;
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  gauge<L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge<L>;
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Histogram<L>;
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /**
   * A gauge read when Prometheus scrapes. A failed or slow read (over a second) keeps the last
   * value: one unreachable dependency must not fail or stall the whole scrape.
   */
  gaugeFrom(name: string, help: string, read: () => Promise<number>): Gauge {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge;
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      async collect() {
        try {
          this.set(await withTimeout(read(), 1000, name));
        } catch {
          // keep the last value
        }
      },
    });
  }

  /** A counter updated once or more per device call: cheap updates, same exposition. */
  hotCounter<L extends string>(name: string, help: string, labelNames: L[]): HotCounter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as unknown as HotCounter<L>;
    return new HotCounter(this.registry, name, help, labelNames);
  }

  /** A histogram observed once or more per device call: cheap updates, same exposition. */
  hotHistogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): HotHistogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as unknown as HotHistogram<L>;
    return new HotHistogram(this.registry, name, help, labelNames, buckets);
  }
}
