// The marketplace over HTTP on its own database: full-text search over name and description,
// category filters, the two orders (installs, rating) paged with opaque keyset cursors, and the
// plugin page. Installs and ratings are made through the API, so the counters under test are the
// ones real traffic moves.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
/** name → id of the marketplace this file builds. */
const ids: Record<string, string> = {};

beforeAll(async () => {
  p = await startPlugins();
  const dev = await p.developer();
  const listed: Array<[string, string, string[], number, number[]]> = [
    // name, description, categories, installs, ratings
    ["Tide tables", "High and low water for any harbour.", ["lifestyle"], 3, [5, 4]],
    ["Barometer", "Barometric pressure trends from nearby stations.", ["data", "lifestyle"], 1, [2]],
    ["Invoice helper", "Drafts invoices and chases late payments.", ["finance", "productivity"], 4, [3, 3, 4]],
    ["Meeting notes", "Turns meeting transcripts into tasks.", ["productivity"], 2, []],
    ["Recipe box", "Recipes from what is left in the fridge.", ["lifestyle"], 0, []],
  ];
  for (const [name, description, categories, installs, ratings] of listed) {
    const id = await p.publishLive(dev, manifest({ name, description, categories }));
    ids[name] = id;
    for (let i = 0; i < installs; i++) {
      const token = await p.token(newUserId());
      if ((await p.install(token, id)).status !== 201) throw new Error("install failed");
      const rating = ratings[i];
      if (rating !== undefined) {
        const review = await p.call("POST", `/catalog/${id}/reviews`, { token, body: { rating, text: "ok" } });
        if (review.status !== 201) throw new Error(`review failed: ${review.status}`);
      }
    }
  }
  // Not on the marketplace: a draft, one in review, and a suspended one, all matching "tide".
  await p.create(dev, manifest({ name: "Tide draft" }));
  const waiting = manifest({ name: "Tide in review" });
  await p.submit(dev, (await p.create(dev, waiting)).body.id, "1.0.0");
  const suspended = await p.publishLive(dev, manifest({ name: "Tide suspended" }));
  await p.call("POST", `/admin/plugins/${suspended}/suspend`, { token: await p.adminToken(), body: { reason: "x" } });
}, 60_000);
afterAll(() => p.ctx.close());

const names = (answer: { body: { items: Array<{ name: string }> } }) => answer.body.items.map((item) => item.name);
const get = async (query: string) => p.call("GET", `/catalog${query}`, { token: await p.token(newUserId(), "team") });

/** Every page of a query, following next_cursor. */
async function allPages(query: string) {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const separator = query.includes("?") ? "&" : "?";
    const answer = await get(cursor ? `${query}${separator}cursor=${cursor}` : query);
    expect(answer.status).toBe(200);
    seen.push(...names(answer));
    cursor = answer.body.next_cursor;
    pages += 1;
  } while (cursor && pages < 20);
  return { seen, pages };
}

describe("search", () => {
  test("matches words of the name or the description, case-insensitively; nothing unpublished or suspended", async () => {
    expect(names(await get("?q=tide"))).toEqual(["Tide tables"]);
    expect(names(await get("?q=HARBOUR"))).toEqual(["Tide tables"]);
    expect(names(await get("?q=barometric"))).toEqual(["Barometer"]);
    expect(names(await get("?q=invoices"))).toEqual(["Invoice helper"]);
    expect(names(await get('?q="late payments"'))).toEqual(["Invoice helper"]);
    expect(names(await get('?q="payments late"'))).toEqual([]);
    expect(names(await get("?q=meeting -invoices"))).toEqual(["Meeting notes"]);
    expect(names(await get("?q=harbour or fridge&sort=installs"))).toEqual(["Tide tables", "Recipe box"]);
    expect(names(await get("?q=volcano"))).toEqual([]);
  });

  test("filters by category, alone or with text", async () => {
    expect(names(await get("?category=lifestyle"))).toEqual(["Tide tables", "Barometer", "Recipe box"]);
    expect(names(await get("?category=productivity&q=tasks"))).toEqual(["Meeting notes"]);
    expect(names(await get("?category=health"))).toEqual([]);
  });

  test("orders by installs or by average rating, each item with its counters", async () => {
    const byInstalls = await get("");
    expect(names(byInstalls)).toEqual(["Invoice helper", "Tide tables", "Meeting notes", "Barometer", "Recipe box"]);
    expect(byInstalls.body.items[0]).toMatchObject({
      installs: 4,
      rating: { average: 10 / 3, count: 3 },
      version: "1.0.0",
      pricing: { model: "free" },
      runtime_type: "remote",
      status: "published",
      suspended: false,
    });
    const byRating = await get("?sort=rating");
    expect(names(byRating).slice(0, 3)).toEqual(["Tide tables", "Invoice helper", "Barometer"]);
    expect(byRating.body.items.map((item: { rating: { average: number } }) => item.rating.average)).toEqual([
      4.5,
      10 / 3,
      2,
      0,
      0,
    ]);
  });

  test("pages through either order with cursors: every plugin once, in order", async () => {
    const whole = names(await get("?limit=50"));
    const paged = await allPages("?limit=2");
    expect(paged).toEqual({ seen: whole, pages: 3 });
    const wholeRating = names(await get("?sort=rating&limit=50"));
    expect(await allPages("?sort=rating&limit=1")).toEqual({ seen: wholeRating, pages: 5 });
    expect(await allPages("?category=lifestyle&limit=2")).toEqual({
      seen: ["Tide tables", "Barometer", "Recipe box"],
      pages: 2,
    });
  });

  test("malformed queries and cursors are 422 with a code, never 500", async () => {
    const first = await get("?limit=1");
    const installsCursor = first.body.next_cursor as string;
    const forge = (text: string) => Buffer.from(text).toString("base64url");
    const id = crypto.randomUUID();
    const cases: Array<[string, string]> = [
      [`?sort=rating&cursor=${installsCursor}`, "invalid_cursor"],
      ["?cursor=!!!", "invalid_cursor"],
      [`?cursor=${forge(`installs|-1|${id}`)}`, "invalid_cursor"],
      [`?cursor=${forge(`installs|99999999999|${id}`)}`, "invalid_cursor"],
      [`?cursor=${forge("installs|3|not-a-uuid")}`, "invalid_cursor"],
      [`?cursor=${forge(`installs|3|${id}|extra`)}`, "invalid_cursor"],
      [`?sort=rating&cursor=${forge(`rating|NaN|${id}`)}`, "invalid_cursor"],
      [`?sort=rating&cursor=${forge(`rating|6|${id}`)}`, "invalid_cursor"],
      [`?sort=rating&cursor=${forge(`rating|4.50|${id}`)}`, "invalid_cursor"],
      [`?cursor=${"a".repeat(301)}`, "validation_failed"],
      ["?sort=newest", "validation_failed"],
      ["?limit=0", "validation_failed"],
      ["?limit=51", "validation_failed"],
      ["?limit=ten", "validation_failed"],
      ["?category=gambling", "validation_failed"],
      [`?q=${"x".repeat(201)}`, "validation_failed"],
      ["?offset=10", "validation_failed"],
    ];
    for (const [query, code] of cases) {
      const answer = await get(query);
      expect({ query, status: answer.status, code: answer.body?.error?.code }).toEqual({ query, status: 422, code });
    }
    // Search syntax is never an error: odd input is words.
    for (const q of ["'", "&|!", "a:b", "((", "-"]) {
      expect((await get(`?q=${encodeURIComponent(q)}`)).status).toBe(200);
    }
  });
});

describe("a plugin's page", () => {
  test("its published versions with their changelogs, newest first, the average rating and installs", async () => {
    const dev = await p.developer();
    const body = manifest({ name: "Versioned", changelog: "First." });
    const id = await p.publishLive(dev, body);
    await p.releaseVersion(dev, id, manifest({ slug: body.slug as string, version: "1.1.0", changelog: "Second." }));
    // A draft of a later version is not on the page.
    await p.addVersion(dev, id, manifest({ slug: body.slug as string, version: "2.0.0", changelog: "Secret." }));
    const page = await p.call("GET", `/catalog/${id}`, { token: await p.token(newUserId()) });
    expect(page.body).toMatchObject({ id, version: "1.1.0", installs: 0, rating: { average: 0, count: 0 } });
    expect(
      page.body.versions.map((each: { version: string; changelog: string }) => [each.version, each.changelog]),
    ).toEqual([
      ["1.1.0", "Second."],
      ["1.0.0", "First."],
    ]);
    expect(page.body.versions[0]).toMatchObject({
      status: "published",
      tools: [
        { name: "forecast", description: "The forecast for a place" },
        { name: "alerts", description: "Weather alerts" },
      ],
      tiers: ["free", "pro", "power", "team"],
      signature: expect.any(String),
      signing_key: dev.publicKey,
    });
    expect((await p.call("GET", `/catalog/${crypto.randomUUID()}`, { token: dev.token })).status).toBe(404);
    expect((await p.call("GET", "/catalog/not-a-uuid", { token: dev.token })).status).toBe(422);
  });
});
