import { cosine } from "../../src/shared/llm/cosine";

// A small in-memory Qdrant REST server for tests: the endpoints the memory store uses, with
// Qdrant's request and response shapes, and every request recorded so tests can check the
// adapter against the REST contract (paths, bodies, tenant index, user filter).
interface Point {
  id: string;
  vector: number[];
  payload: Record<string, unknown>;
}
interface Condition {
  key?: string;
  match?: { value?: unknown };
  has_id?: Array<string | number>;
}
interface Filter {
  must?: Condition[];
}
export interface QdrantRequest {
  method: string;
  path: string;
  search: string;
  headers: Record<string, string>;
  body: unknown;
}

const ok = (result: unknown) => Response.json({ result, status: "ok", time: 0.0001 });
const fail = (status: number, error: string) => Response.json({ status: { error } }, { status });

export class FakeQdrant {
  readonly requests: QdrantRequest[] = [];
  readonly collections = new Map<string, { size: number; distance: string; points: Map<string, Point> }>();
  readonly indexes: Array<{ collection: string; field_name: string; field_schema: unknown }> = [];
  private readonly server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => this.handle(request) });

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  close(): Promise<void> {
    return this.server.stop(true);
  }

  private async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const body = request.method === "GET" ? undefined : await request.json().catch(() => undefined);
    this.requests.push({
      method: request.method,
      path: url.pathname,
      search: url.search,
      headers: request.headers.toJSON(),
      body,
    });
    const match = /^\/collections\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!match) return fail(404, "not found");
    const name = decodeURIComponent(match[1]!);
    const rest = match[2] ?? "";
    const collection = this.collections.get(name);
    const route = `${request.method} ${rest}`;
    if (route === "GET /exists") return ok({ exists: collection !== undefined });
    if (route === "PUT ") {
      if (collection) return fail(409, `Collection ${name} already exists`);
      const vectors = (body as { vectors?: { size?: number; distance?: string } })?.vectors;
      if (!vectors?.size || !vectors.distance) return fail(422, "vectors config required");
      this.collections.set(name, { size: vectors.size, distance: vectors.distance, points: new Map() });
      return ok(true);
    }
    if (!collection) return fail(404, `Collection ${name} doesn't exist`);
    const input = (body ?? {}) as Record<string, unknown>;
    switch (route) {
      case "PUT /index": {
        this.indexes.push({ collection: name, field_name: String(input.field_name), field_schema: input.field_schema });
        return ok({ operation_id: this.requests.length, status: "completed" });
      }
      case "PUT /points": {
        for (const point of (input.points ?? []) as Point[]) {
          if (point.vector.length !== collection.size) return fail(400, "Wrong input: Vector dimension error");
          collection.points.set(String(point.id), { ...point, id: String(point.id) });
        }
        return ok({ operation_id: this.requests.length, status: "completed" });
      }
      case "POST /points/query": {
        const query = input.query as number[];
        const threshold = typeof input.score_threshold === "number" ? input.score_threshold : -Infinity;
        const points = this.matching(collection.points, input.filter as Filter)
          .map((point) => ({ id: point.id, version: 0, score: cosine(query, point.vector), payload: point.payload }))
          .filter((point) => point.score >= threshold)
          .sort((a, b) => b.score - a.score)
          .slice(0, Number(input.limit ?? 10));
        return ok({ points });
      }
      case "POST /points/scroll": {
        const all = this.matching(collection.points, input.filter as Filter).sort((a, b) => a.id.localeCompare(b.id));
        const start = input.offset ? all.findIndex((point) => point.id === String(input.offset)) : 0;
        const limit = Number(input.limit ?? 10);
        const page = all.slice(Math.max(0, start), Math.max(0, start) + limit);
        const next = all[Math.max(0, start) + limit];
        return ok({ points: page.map(({ id, payload }) => ({ id, payload })), next_page_offset: next?.id ?? null });
      }
      case "POST /points/count":
        return ok({ count: this.matching(collection.points, input.filter as Filter).length });
      case "POST /points/delete": {
        for (const point of this.matching(collection.points, input.filter as Filter))
          collection.points.delete(point.id);
        return ok({ operation_id: this.requests.length, status: "completed" });
      }
      default:
        return fail(404, `no route ${route}`);
    }
  }

  private matching(points: Map<string, Point>, filter: Filter | undefined): Point[] {
    return [...points.values()].filter((point) =>
      (filter?.must ?? []).every((condition) => {
        if (condition.has_id) return condition.has_id.map(String).includes(point.id);
        if (condition.key && condition.match) return point.payload[condition.key] === condition.match.value;
        throw new Error(`unsupported condition ${JSON.stringify(condition)}`);
      }),
    );
  }
}
