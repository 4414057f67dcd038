// Ratings and reviews over HTTP: only by users who installed the plugin, one each, editable and
// deletable; reported by other users for the admins, who may remove them. The average and count on
// the listing move in the transaction of each review, checked against real concurrency.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Developer, manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
let dev: Developer;
beforeAll(async () => {
  p = await startPlugins();
  dev = await p.developer();
});
afterAll(() => p.ctx.close());

const codeOf = (answer: { status: number; body: { error?: { code: string } } }) => ({
  status: answer.status,
  code: answer.body?.error?.code,
});

/** A user with the plugin installed: their token. */
async function installer(pluginId: string) {
  const token = await p.token(newUserId());
  const installed = await p.install(token, pluginId);
  if (installed.status !== 201) throw new Error(`install: ${installed.status}`);
  return token;
}

const rating = async (id: string) => (await p.call("GET", `/catalog/${id}`, { token: dev.token })).body.rating;

describe("reviews", () => {
  test("an installer rates and reviews once, edits and deletes; the listing's average follows", async () => {
    const id = await p.publishLive(dev, manifest());
    const stranger = await p.token(newUserId());
    expect(codeOf(await p.call("POST", `/catalog/${id}/reviews`, { token: stranger, body: { rating: 5 } }))).toEqual({
      status: 403,
      code: "install_required",
    });
    const alice = await installer(id);
    const bob = await installer(id);
    const created = await p.call("POST", `/catalog/${id}/reviews`, {
      token: alice,
      body: { rating: 5, text: "Great" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(String),
      rating: 5,
      text: "Great",
      created_at: expect.any(String),
      updated_at: expect.any(String),
      mine: true,
    });
    expect(
      codeOf(await p.call("POST", `/catalog/${id}/reviews`, { token: alice, body: { rating: 1, text: "again" } })),
    ).toEqual({ status: 409, code: "already_reviewed" });
    await p.call("POST", `/catalog/${id}/reviews`, { token: bob, body: { rating: 2 } });
    expect(await rating(id)).toEqual({ average: 3.5, count: 2 });

    const edited = await p.call("PUT", `/catalog/${id}/reviews/me`, {
      token: alice,
      body: { rating: 4, text: "Good" },
    });
    expect(edited.body).toMatchObject({ rating: 4, text: "Good", mine: true });
    expect(await rating(id)).toEqual({ average: 3, count: 2 });
    expect((await p.call("DELETE", `/catalog/${id}/reviews/me`, { token: bob })).status).toBe(204);
    expect(await rating(id)).toEqual({ average: 4, count: 1 });
    expect(codeOf(await p.call("DELETE", `/catalog/${id}/reviews/me`, { token: bob }))).toEqual({
      status: 404,
      code: "not_found",
    });
    expect(codeOf(await p.call("PUT", `/catalog/${id}/reviews/me`, { token: bob, body: { rating: 3 } }))).toEqual({
      status: 404,
      code: "not_found",
    });
    // The list names nobody: no user id, `mine` for the caller's own.
    const list = await p.call("GET", `/catalog/${id}/reviews`, { token: stranger });
    expect(list.body).toEqual({
      items: [expect.objectContaining({ rating: 4, text: "Good", mine: false })],
      rating: { average: 4, count: 1 },
      next_cursor: null,
    });
    expect(JSON.stringify(list.body)).not.toContain("user");
  });

  test("malformed reviews are 422; a plugin not on the marketplace is 404", async () => {
    const id = await p.publishLive(dev, manifest());
    const token = await installer(id);
    for (const body of [
      { rating: 0 },
      { rating: 6 },
      { rating: 4.5 },
      { rating: "5" },
      { rating: 5, text: "x".repeat(2001) },
      { text: "no rating" },
    ]) {
      expect({ body, ...codeOf(await p.call("POST", `/catalog/${id}/reviews`, { token, body })) }).toEqual({
        body,
        status: 422,
        code: "validation_failed",
      });
    }
    const draft = (await p.create(dev, manifest())).body.id as string;
    expect(codeOf(await p.call("GET", `/catalog/${draft}/reviews`, { token }))).toEqual({
      status: 404,
      code: "not_found",
    });
    expect(codeOf(await p.call("POST", `/catalog/${draft}/reviews`, { token, body: { rating: 3 } }))).toEqual({
      status: 404,
      code: "not_found",
    });
  });

  test("reviews page newest first with a cursor", async () => {
    const id = await p.publishLive(dev, manifest());
    for (let i = 1; i <= 5; i++) {
      await p.call("POST", `/catalog/${id}/reviews`, {
        token: await installer(id),
        body: { rating: 3, text: `r${i}` },
      });
    }
    const texts: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const page = await p.call("GET", `/catalog/${id}/reviews${query}`, { token: dev.token });
      texts.push(...page.body.items.map((item: { text: string }) => item.text));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(texts).toEqual(["r5", "r4", "r3", "r2", "r1"]);
    expect(codeOf(await p.call("GET", `/catalog/${id}/reviews?cursor=!!`, { token: dev.token }))).toEqual({
      status: 422,
      code: "invalid_cursor",
    });
  });
});

describe("reports and moderation", () => {
  test("other users report a review once each; its author cannot; admins see it and remove it", async () => {
    const id = await p.publishLive(dev, manifest());
    const author = await installer(id);
    const review = (
      await p.call("POST", `/catalog/${id}/reviews`, { token: author, body: { rating: 1, text: "spam spam" } })
    ).body.id as string;
    const path = `/catalog/${id}/reviews/${review}/report`;
    expect(codeOf(await p.call("POST", path, { token: author, body: { reason: "spam" } }))).toEqual({
      status: 403,
      code: "own_review",
    });
    const first = await p.token(newUserId());
    const second = await p.token(newUserId());
    expect((await p.call("POST", path, { token: first, body: { reason: "spam" } })).status).toBe(204);
    expect((await p.call("POST", path, { token: second, body: { reason: "abuse", note: "insults" } })).status).toBe(
      204,
    );
    expect(codeOf(await p.call("POST", path, { token: first, body: { reason: "other" } }))).toEqual({
      status: 409,
      code: "already_reported",
    });
    expect(codeOf(await p.call("POST", path, { token: first, body: { reason: "boring" } }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    const elsewhere = await p.publishLive(dev, manifest());
    expect(
      codeOf(
        await p.call("POST", `/catalog/${elsewhere}/reviews/${review}/report`, {
          token: first,
          body: { reason: "spam" },
        }),
      ),
    ).toEqual({ status: 404, code: "not_found" });

    const admin = await p.adminToken();
    const reported = await p.call("GET", "/admin/reported-reviews", { token: admin });
    expect(reported.body.items).toEqual([
      expect.objectContaining({
        id: review,
        plugin_id: id,
        report_count: 2,
        reasons: ["abuse", "spam"],
        text: "spam spam",
      }),
    ]);
    expect(await rating(id)).toEqual({ average: 1, count: 1 });
    expect((await p.call("DELETE", `/admin/reviews/${review}`, { token: admin })).status).toBe(204);
    expect(await rating(id)).toEqual({ average: 0, count: 0 });
    expect((await p.call("GET", "/admin/reported-reviews", { token: admin })).body.items).toEqual([]);
    expect(codeOf(await p.call("DELETE", `/admin/reviews/${review}`, { token: admin }))).toEqual({
      status: 404,
      code: "not_found",
    });
  });
});

describe("races", () => {
  test("40 installers rating at once: the average and count are exact", async () => {
    const id = await p.publishLive(dev, manifest());
    const tokens = await Promise.all(Array.from({ length: 40 }, () => installer(id)));
    const ratings = tokens.map((_, i) => (i % 5) + 1);
    const answers = await Promise.all(
      tokens.map((token, i) => p.call("POST", `/catalog/${id}/reviews`, { token, body: { rating: ratings[i] } })),
    );
    expect(answers.every((answer) => answer.status === 201)).toBe(true);
    expect(await rating(id)).toEqual({ average: 3, count: 40 });
    // Edits and deletions at once: half move to 5, a quarter delete.
    await Promise.all(
      tokens.map((token, i) =>
        i < 20
          ? p.call("PUT", `/catalog/${id}/reviews/me`, { token, body: { rating: 5 } })
          : i < 30
            ? p.call("DELETE", `/catalog/${id}/reviews/me`, { token })
            : Promise.resolve(),
      ),
    );
    const left = [...Array(20).fill(5), ...ratings.slice(30)];
    expect(await rating(id)).toEqual({ average: left.reduce((a, b) => a + b, 0) / left.length, count: left.length });
  }, 30_000);

  test("one user posting the same review 10 times at once: one review, counted once; 20 rounds", async () => {
    const id = await p.publishLive(dev, manifest());
    for (let round = 0; round < 20; round++) {
      const token = await installer(id);
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => p.call("POST", `/catalog/${id}/reviews`, { token, body: { rating: 4 } })),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, ...Array(9).fill(409)]);
    }
    expect(await rating(id)).toEqual({ average: 4, count: 20 });
  }, 30_000);
});
