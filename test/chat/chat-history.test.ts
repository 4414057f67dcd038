// History and memory routes: pagination, ownership (404 for anyone else's), and the security
// checks every route shares. The model is the fake OpenAI-compatible server (harness.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ChatHarness, startChat } from "./harness";

let h: ChatHarness;
beforeAll(async () => {
  h = await startChat();
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
interface ConversationView {
  id: string;
  title: string;
  surface: string;
  messages: Array<{ role: string; parts: Array<{ type: string; text?: string }> }>;
  next_cursor: string | null;
}

async function converse(token: string, texts: string[], chatId?: string): Promise<string> {
  let id = chatId;
  for (const text of texts) {
    h.llm.script({ text: `re: ${text}` });
    const reply = (await (await h.chatJson(token, { text, ...(id ? { chat_id: id } : {}) })).json()) as {
      chat_id: string;
    };
    id = reply.chat_id;
  }
  return id!;
}

describe("conversations", () => {
  test("lists the caller's conversations, most recently active first, page by page", async () => {
    const token = await h.token(user());
    const first = await converse(token, ["first topic"]);
    const second = await converse(token, ["second topic"]);
    const third = await converse(token, ["third topic"]);
    await converse(token, ["back to the first"], first);
    await converse(await h.token(user()), ["someone else"]);
    const page1 = (await (await h.get(token, "/conversations?limit=2")).json()) as Page<{ id: string; title: string }>;
    expect(page1.items.map((item) => item.id)).toEqual([first, third]);
    expect(page1.items[0]?.title).toBe("first topic");
    const page2 = (await (await h.get(token, `/conversations?limit=2&cursor=${page1.next_cursor}`)).json()) as Page<{
      id: string;
    }>;
    expect(page2.items.map((item) => item.id)).toEqual([second]);
    expect(page2.next_cursor).toBeNull();
  });

  test("reads a conversation's messages newest page first, each page in order", async () => {
    const token = await h.token(user());
    const id = await converse(token, ["one", "two", "three"]);
    const latest = (await (await h.get(token, `/conversations/${id}?limit=4`)).json()) as ConversationView;
    const texts = (view: ConversationView) =>
      view.messages.map((message) => message.parts.find((p) => p.type === "text")?.text);
    expect(texts(latest)).toEqual(["two", "re: two", "three", "re: three"]);
    expect(latest.surface).toBe("home");
    const older = (await (
      await h.get(token, `/conversations/${id}?limit=4&cursor=${latest.next_cursor}`)
    ).json()) as ConversationView;
    expect(texts(older)).toEqual(["one", "re: one"]);
    expect(older.next_cursor).toBeNull();
  });

  test("another user's conversation is 404; malformed ids, limits and cursors are 422", async () => {
    const owner = await h.token(user());
    const id = await converse(owner, ["private"]);
    const intruder = await h.token(user());
    expect((await h.get(intruder, `/conversations/${id}`)).status).toBe(404);
    expect((await h.get(owner, `/conversations/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await h.get(owner, "/conversations/123")).status).toBe(422);
    expect((await h.get(owner, "/conversations?limit=0")).status).toBe(422);
    expect((await h.get(owner, "/conversations?limit=1000")).status).toBe(422);
    expect((await h.get(owner, "/conversations?cursor=garbage")).status).toBe(422);
    expect((await h.get(owner, `/conversations/${id}?cursor=${btoa("x|y")}`)).status).toBe(422);
    expect((await h.get(owner, `/memories?cursor=${btoa("2020-01-01|not-a-uuid")}`)).status).toBe(422);
  });
});

describe("cursor dates", () => {
  const cursor = (key: string) => Buffer.from(`${key}|${crypto.randomUUID()}`).toString("base64url");

  test("a date JavaScript reads but PostgreSQL refuses is 422 invalid_cursor, not a 500", async () => {
    const token = await h.token(user());
    await converse(token, ["something to page through"]);
    for (const key of ["+275760-09-13", "0000-01-01T00:00:00.000Z", "2024-02-30T00:00:00.000Z", "2024"]) {
      for (const path of ["/conversations", "/memories"]) {
        const response = await h.get(token, `${path}?cursor=${cursor(key)}`);
        const body = (await response.json()) as { error?: { code: string } };
        expect({ key, path, status: response.status, code: body.error?.code }).toEqual({
          key,
          path,
          status: 422,
          code: "invalid_cursor",
        });
      }
    }
  });

  test("a cursor the server wrote still pages", async () => {
    const token = await h.token(user());
    await converse(token, ["one"]);
    await converse(token, ["two"]);
    const page = (await (await h.get(token, "/conversations?limit=1")).json()) as Page<{ id: string }>;
    const next = await h.get(token, `/conversations?limit=1&cursor=${page.next_cursor}`);
    expect(next.status).toBe(200);
    expect(((await next.json()) as Page<{ id: string }>).items).toHaveLength(1);
  });
});

describe("rate limit", () => {
  test("the tier's requests per minute apply to chat routes, with the RateLimit headers", async () => {
    const token = await h.token(user(), "free");
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 21; i++) {
      last = await h.get(token, "/conversations");
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 20).every((status) => status === 200)).toBe(true);
    expect(statuses[20]).toBe(429);
    expect(((await last!.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(last!.headers.get("ratelimit-policy")).toContain("q=20");
  });
});

describe("security: every chat route", () => {
  const routes: Array<[string, string]> = [
    ["POST", "/"],
    ["GET", "/conversations"],
    ["GET", `/conversations/${crypto.randomUUID()}`],
    ["GET", "/memories"],
    ["DELETE", "/memories"],
    ["DELETE", `/memories/${crypto.randomUUID()}`],
  ];
  const call = (method: string, path: string, authorization?: string) =>
    fetch(`${h.url}/api/v1/chat${path}`, {
      method,
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      body: method === "POST" ? JSON.stringify({ text: "hi" }) : undefined,
    });

  for (const [method, path] of routes) {
    test(`${method} ${path.replace(/[0-9a-f-]{36}/, ":id")} needs a valid token`, async () => {
      const before = h.llm.requests.length;
      const expired = await h.ctx.token(user(), "free", { expiresInS: -60 });
      const wrongIssuer = await h.ctx.token(user(), "free", { issuer: "someone-else" });
      for (const authorization of [
        undefined,
        "Bearer nonsense",
        `Bearer ${expired}`,
        `Bearer ${wrongIssuer}`,
        "Basic abc",
      ]) {
        const response = await call(method, path, authorization);
        expect({ authorization, status: response.status }).toEqual({ authorization, status: 401 });
        expect(((await response.json()) as { error: { code: string } }).error.code).toBeString();
      }
      expect(h.llm.requests.length).toBe(before);
    });
  }
});
