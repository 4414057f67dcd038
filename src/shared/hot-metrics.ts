import type { Registry } from "prom-client";

/**
 * A counter and a histogram for per-call hot paths (the device RPC). prom-client validates and
 * hashes the label object on every update; on the device RPC benchmark the RPC's metric updates
 * took about a quarter of a caller's CPU per call. Here a label set is found by walking one map
 * per label name, which allocates nothing, and an update is a few number writes. They register with the same
 * registry and render exactly as prom-client's Counter and Histogram do
 * (`test/shared/hot-metrics.test.ts` compares the two).
 */
type Labels<L extends string> = Record<L, string>;

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
}

interface Exported {
  name: string;
  help: string;
  type: "counter" | "histogram";
  values: ValuePair[];
  aggregator: "sum";
}

interface Series<L extends string, S> {
  labels: Labels<L>;
  state: S;
}

/** One level per label name, keyed by the label's value: a lookup allocates nothing. */
type SeriesTree<L extends string, S> = Map<string, SeriesTree<L, S> | Series<L, S>>;

abstract class HotMetric<L extends string, S> {
  readonly aggregator = "sum";
  protected readonly series: Array<Series<L, S>> = [];
  private tree: SeriesTree<L, S> = new Map();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
  ) {
    // prom-client's registry takes any object with its metric shape.
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  protected abstract fresh(): S;

  protected stateOf(labels: Labels<L>): S {
    const names = this.labelNames;
    let level = this.tree;
    for (let i = 0; i < names.length - 1; i++) {
      const value = labels[names[i]!];
      let next = level.get(value) as SeriesTree<L, S> | undefined;
      if (!next) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const last = names.length > 0 ? labels[names[names.length - 1]!] : "";
    let entry = level.get(last) as Series<L, S> | undefined;
    if (!entry) {
      entry = { labels: { ...labels }, state: this.fresh() };
      level.set(last, entry);
      this.series.push(entry);
    }
    return entry.state;
  }

  abstract getForPromString(): Promise<Exported>;

  async get(): Promise<Exported> {
    const exported = await this.getForPromString();
    exported.values = exported.values.map(({ sharedLabels, ...pair }) => ({
      ...pair,
      labels: { ...pair.labels, ...sharedLabels },
    }));
    return exported;
  }

  reset(): void {
    this.series.length = 0;
    this.tree = new Map();
  }
}

export class HotCounter<L extends string> extends HotMetric<L, { value: number }> {
  readonly type = "counter";

  protected fresh() {
    return { value: 0 };
  }

  inc(labels: Labels<L>, amount = 1): void {
    this.stateOf(labels).value += amount;
  }

  async getForPromString(): Promise<Exported> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.series.map(({ labels, state }) => ({ labels, value: state.value })),
    };
  }
}

interface HistogramState {
  /** Count per bucket (not cumulative), in the order of the upper bounds. */
  counts: number[];
  sum: number;
  count: number;
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramState> {
  readonly type = "histogram";
  private readonly bounds: number[];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[], buckets: number[]) {
    super(registry, name, help, labelNames);
    this.bounds = [...buckets].sort((a, b) => a - b);
  }

  protected fresh(): HistogramState {
    return { counts: this.bounds.map(() => 0), sum: 0, count: 0 };
  }

  observe(labels: Labels<L>, value: number): void {
    if (!Number.isFinite(value)) return;
    const state = this.stateOf(labels);
    const { bounds } = this;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        state.counts[i]! += 1;
        break;
      }
    }
    state.sum += value;
    state.count += 1;
  }

  async getForPromString(): Promise<Exported> {
    const bucketName = `${this.name}_bucket`;
    const values: ValuePair[] = [];
    for (const { labels, state } of this.series) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += state.counts[i]!;
        values.push({ labels: { le: bound }, sharedLabels: labels, value: cumulative, metricName: bucketName });
      });
      values.push(
        { labels: { le: "+Inf" }, sharedLabels: labels, value: state.count, metricName: bucketName },
        { labels: {}, sharedLabels: labels, value: state.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: labels, value: state.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
