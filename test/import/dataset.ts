// A monolith export for the import's tests and bench: many users with the three hash formats the
// monolith stored, tokens, subscriptions, agent configurations and memories referring to them, and
// in every file the bad lines an export can hold. Real hashes are few (hashing is the slow part)
// and shared by many users.
import { pbkdf2Sync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toAdaptedBase64 } from "../../src/auth/legacy-hashes";
import type { Entity } from "../../src/import/report";

export const LEGACY_PASSWORD = "legacy password 2019";
/** Prices of the deployment the tests import into (STRIPE_PRICE_PRO); others map by their `tier`. */
export const PRO_PRICE = "price_legacy_pro";

export type HashFormat = "argon2id" | "bcrypt" | "pbkdf2-sha256";

export interface Expected {
  /** Lines that are applied (created on the first run). */
  valid: number;
  /** Lines reported and skipped on every run. */
  skipped: number;
}

export interface LegacyUser {
  legacyId: number;
  email: string;
  format: HashFormat;
}

export interface Dataset {
  dir: string;
  expected: Record<Entity, Expected>;
  /** The user with each hash format, for sign-in checks. */
  byFormat: Record<HashFormat, LegacyUser>;
  /** A user whose active subscription is on the pro price. */
  proUser: LegacyUser;
  /** A user whose only subscription was canceled: free. */
  canceledUser: LegacyUser;
  /** A user the monolith keyed by UUID: auth keeps that id. */
  uuidUser: { id: string; email: string };
  /** A user with an agent configuration and memories. */
  agentUser: LegacyUser;
  memoryText: string;
  /** Legacy refresh tokens in clear, by the legacy user they belong to. */
  tokens: Map<number, string>;
}

async function realHashes(): Promise<Record<HashFormat, string[]>> {
  const pbkdf2 = (salt: Uint8Array) =>
    `$pbkdf2-sha256$1000$${toAdaptedBase64(salt)}$${toAdaptedBase64(pbkdf2Sync(LEGACY_PASSWORD, salt, 1000, 32, "sha256"))}`;
  return {
    argon2id: await Promise.all(
      [1, 2].map(() => Bun.password.hash(LEGACY_PASSWORD, { algorithm: "argon2id", memoryCost: 4096, timeCost: 1 })),
    ),
    bcrypt: await Promise.all([1, 2].map(() => Bun.password.hash(LEGACY_PASSWORD, { algorithm: "bcrypt", cost: 4 }))),
    "pbkdf2-sha256": [1, 2].map(() => pbkdf2(crypto.getRandomValues(new Uint8Array(16)))),
  };
}

const FORMATS: HashFormat[] = ["argon2id", "bcrypt", "pbkdf2-sha256"];
const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");
const json = (value: unknown) => JSON.stringify(value);
const sha256 = (text: string, encoding: "hex" | "base64url") =>
  new Bun.CryptoHasher("sha256").update(text).digest(encoding);

/** Writes the five files for `users` users (≥ 1000) into a new directory. */
export async function writeDataset(users: number, options: { badLines?: boolean } = {}): Promise<Dataset> {
  const badLines = options.badLines ?? true;
  const dir = mkdtempSync(join(tmpdir(), "adiuva-import-"));
  const hashes = await realHashes();
  const userOf = (legacyId: number): LegacyUser => ({
    legacyId,
    email: `user${legacyId}@legacy.example`,
    format: FORMATS[legacyId % 3] as HashFormat,
  });
  const day = Date.UTC(2023, 0, 1);

  const userLines: string[] = [];
  for (let legacyId = 1; legacyId <= users; legacyId++) {
    const user = userOf(legacyId);
    userLines.push(
      json({
        id: legacyId,
        // Some exports kept the case people typed; auth stores e-mails lower-cased.
        email: legacyId % 7 === 0 ? user.email.toUpperCase() : user.email,
        password_hash: hashes[user.format][legacyId % 2],
        tier: "free",
        name: legacyId % 4 === 0 ? `User ${legacyId}` : null,
        locale: "en-GB",
        created_at: iso(day + legacyId * 60_000),
      }),
    );
  }
  const uuidUser = { id: crypto.randomUUID(), email: "uuid-user@legacy.example" };
  userLines.push(json({ id: uuidUser.id.toUpperCase(), email: uuidUser.email, password_hash: hashes.bcrypt[0] }));
  const badUsers = [
    "{not json",
    json({ id: 900001, password_hash: hashes.bcrypt[0] }),
    json({ id: 900002, email: "md5@legacy.example", password_hash: "5f4dcc3b5aa765d61d8327deb882cf99" }),
    json({ id: 900003, email: "USER1@legacy.example", password_hash: hashes.bcrypt[0] }),
    json({ id: 1, email: "another@legacy.example", password_hash: hashes.bcrypt[0] }),
    json({ id: 900004, email: "gold@legacy.example", password_hash: hashes.bcrypt[0], tier: "gold" }),
  ];

  const tokens = new Map<number, string>();
  const tokenLines: string[] = [];
  for (let legacyId = 1; legacyId <= 40; legacyId++) {
    const token = `legacy-refresh-${legacyId}-${crypto.randomUUID()}`;
    tokens.set(legacyId, token);
    tokenLines.push(
      json({
        id: `rt-${legacyId}`,
        user_id: legacyId,
        // Both encodings the format allows.
        token_sha256: sha256(token, legacyId % 2 === 0 ? "hex" : "base64url"),
        expires_at: iso(Date.now() + 20 * 86_400_000),
        created_at: iso(Date.now() - 86_400_000),
      }),
    );
  }
  const badTokens = [
    "[1, 2",
    json({ id: "rt-bad-hash", user_id: 1, token_sha256: "abc", expires_at: iso(Date.now() + 1e9) }),
    json({ id: "rt-no-user", user_id: 777777, token_sha256: sha256("x", "hex"), expires_at: iso(Date.now() + 1e9) }),
    json({ id: "rt-expired", user_id: 2, token_sha256: sha256("old", "hex"), expires_at: iso(Date.now() - 1000) }),
  ];

  const subscriptionLines: string[] = [];
  for (let legacyId = 5; legacyId <= users; legacyId += 5) {
    const active = legacyId % 10 === 0;
    subscriptionLines.push(
      json({
        id: `sub_legacy${legacyId}`,
        user_id: legacyId,
        customer_id: `cus_legacy${legacyId}`,
        item_id: `si_legacy${legacyId}`,
        price_id: active ? PRO_PRICE : "price_retired_plan",
        // Used when the price is none this deployment sells.
        tier: "pro",
        status: active ? "active" : "canceled",
        current_period_end: iso(Date.now() + 10 * 86_400_000),
        cancel_at_period_end: false,
        ended_at: active ? null : iso(Date.now() - 86_400_000),
        created_at: iso(day),
      }),
    );
  }
  const badSubscriptions = [
    "not json at all",
    json({ id: "sub_status", user_id: 10, customer_id: "cus_legacy10", status: "wat", created_at: iso(day) }),
    json({ id: "sub_nouser", user_id: 777777, customer_id: "cus_nouser", status: "active", created_at: iso(day) }),
    // Another user's Stripe customer.
    json({
      id: "sub_stolen",
      user_id: 11,
      customer_id: "cus_legacy10",
      status: "active",
      tier: "team",
      created_at: iso(day),
    }),
  ];

  const configLines: string[] = [];
  for (let legacyId = 20; legacyId <= users; legacyId += 20) {
    configLines.push(
      json({
        id: `cfg-${legacyId}`,
        user_id: legacyId,
        type: "filesystem",
        name: legacyId % 40 === 0 ? `Documents of ${legacyId}` : null,
        config: { path: `/Users/u${legacyId}/Documents`, extensions: [".md", ".TXT"] },
        device_id: null,
        created_at: iso(day + legacyId),
      }),
    );
  }
  const badConfigs = [
    "{",
    json({ id: "cfg-type", user_id: 20, type: "mind_reader", config: {} }),
    json({ id: "cfg-schema", user_id: 20, type: "filesystem", config: { recursive: true } }),
    json({ id: "cfg-nouser", user_id: 777777, type: "filesystem", config: { path: "/x" } }),
  ];

  const memoryText = "The user keeps their tax documents in a folder named Finances";
  const memoryLines: string[] = [];
  for (let legacyId = 20; legacyId <= users; legacyId += 50) {
    for (const [index, text] of [memoryText, `User ${legacyId} prefers mornings for deep work`].entries()) {
      memoryLines.push(json({ id: `mem-${legacyId}-${index}`, user_id: legacyId, text, created_at: iso(day) }));
    }
  }
  const badMemories = [
    "{]",
    json({ id: "mem-empty", user_id: 20, text: "   " }),
    json({ id: "mem-nouser", user_id: 777777, text: "nobody" }),
  ];

  const files: Record<Entity, [string[], string[]]> = {
    users: [userLines, badUsers],
    refresh_tokens: [tokenLines, badTokens],
    subscriptions: [subscriptionLines, badSubscriptions],
    agent_configs: [configLines, badConfigs],
    memories: [memoryLines, badMemories],
  };
  const expected = {} as Record<Entity, Expected>;
  for (const [entity, [good, bad]] of Object.entries(files) as Array<[Entity, [string[], string[]]]>) {
    const lines = badLines ? interleave(good, bad) : good;
    writeFileSync(join(dir, `${entity}.jsonl`), `${lines.join("\n")}\n`);
    expected[entity] = { valid: good.length, skipped: badLines ? bad.length : 0 };
  }
  return {
    dir,
    expected,
    byFormat: { argon2id: userOf(3), bcrypt: userOf(4), "pbkdf2-sha256": userOf(5) },
    proUser: userOf(10),
    canceledUser: userOf(5),
    uuidUser,
    agentUser: userOf(20),
    memoryText,
    tokens,
  };
}

/** Bad lines spread through the file (and one blank line, which is ignored), not all at its end. */
function interleave(good: string[], bad: string[]): string[] {
  const lines = [...good];
  const step = Math.max(1, Math.floor(good.length / (bad.length + 1)));
  for (const [index, line] of bad.entries()) {
    lines.splice(Math.min(lines.length, (index + 1) * step + index), 0, line);
  }
  lines.splice(1, 0, "");
  return lines;
}
