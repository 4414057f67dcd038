// Metrics that come from exporters, not from the services' code, so the code cannot vouch for them.
// Each list names only what alerts.yml and the dashboards read, as documented by that exporter at
// the image compose.yaml pins; the test fails when the image changes, so the list is read again.

export interface Exporter {
  /** The compose.yaml service and the image it must pin for this list to hold. */
  service: string;
  image: string;
  /** Prometheus's job for it (infra/prometheus/prometheus.yml). */
  job: string;
  metrics: string[];
}

export const exporters: Exporter[] = [
  {
    // github.com/prometheus-community/postgres_exporter (README, "pg_up").
    service: "postgres-exporter",
    image: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
    job: "postgres",
    metrics: ["pg_up"],
  },
  {
    // github.com/oliver006/redis_exporter: redis_up, and INFO memory's used_memory / maxmemory.
    service: "redis-exporter",
    image: "oliver006/redis_exporter:v1.67.0",
    job: "redis",
    metrics: ["redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes"],
  },
  {
    // github.com/prometheus/node_exporter, the filesystem collector (on by default).
    service: "node-exporter",
    image: "prom/node-exporter:v1.9.1",
    job: "node",
    metrics: ["node_filesystem_avail_bytes", "node_filesystem_size_bytes"],
  },
];

/** Prometheus's own series, present for every scrape target. */
export const prometheusMetrics = ["up"];
