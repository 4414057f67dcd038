import { eq, inArray, sql } from "drizzle-orm";
import { normalizeEmail } from "../auth/context";
import { type AuthSecrets, newUserKey, wrapUserKey } from "../auth/crypto";
import { revokeSessions } from "../auth/sessions";
import { users } from "../auth/tables";
import { customers } from "../billing/tables";
import type { Database } from "../shared/db";
import { tierRank } from "../shared/tiers";
import { UserLine } from "./formats";
import { userIdFor } from "./ids";
import type { Numbered } from "./jsonl";
import type { Outcome } from "./report";
import { firstSeen, outcomeOf, type Stage } from "./stage";

type UserRow = typeof users.$inferSelect;

/** Whether auth itself wrote this hash (argon2id at the configured cost: `PasswordHasher.needsRehash`). */
export type AuthHashed = (hash: string) => boolean;
type Line = Numbered<UserLine>;

/** What the import writes of a user; the encryption key is made once, on creation, and never replaced. */
interface Wanted {
  id: string;
  email: string;
  displayName: string | null;
  passwordHash: string;
  /** Undefined when billing decides the tier (the user has a billing customer row). */
  tier: UserLine["tier"] | undefined;
  createdAt: Date | undefined;
}

/**
 * users.jsonl → auth.users, keyed by the id the legacy id maps to (`userIdFor`). New users get a
 * wrapped encryption key as registration gives one. A replaced password hash ends the user's
 * sessions, as a password change does; so does a lower tier.
 */
export interface UsersStageOptions {
  secrets: AuthSecrets;
  authHashed: AuthHashed;
  /** False before billing's schema exists (an auth executable's import): then nobody is billed yet. */
  billingExists: boolean;
}

export function usersStage(options: UsersStageOptions): Stage<typeof UserLine> {
  const sameId = firstSeen("id");
  const sameEmail = firstSeen("e-mail");
  return {
    entity: "users",
    schema: UserLine,
    batchSize: 1000,
    admit: (user, line) => sameId(userIdFor(user.id), line) ?? sameEmail(normalizeEmail(user.email), line),
    apply: (tx, lines) => applyUsers(tx, options, lines),
  };
}

async function applyUsers(tx: Database, options: UsersStageOptions, lines: Line[]): Promise<Outcome[]> {
  const { secrets, authHashed } = options;
  const ids = lines.map((line) => userIdFor(line.value.id));
  const emails = lines.map((line) => normalizeEmail(line.value.email));
  const existing = new Map(
    (await tx.select().from(users).where(inArray(users.id, ids))).map((row) => [row.id, row] as const),
  );
  const emailOwners = new Map(
    (
      await tx
        .select({ id: users.id, email: sql<string>`lower(${users.email})` })
        .from(users)
        .where(inArray(sql`lower(${users.email})`, emails))
    ).map((row) => [row.email, row.id] as const),
  );
  const billed = options.billingExists ? await billedUsers(tx, ids) : new Set<string>();
  const outcomes: Outcome[] = [];
  const inserts: Wanted[] = [];
  for (const [index, { value }] of lines.entries()) {
    const wanted: Wanted = {
      id: ids[index] as string,
      email: emails[index] as string,
      displayName: value.name,
      passwordHash: value.password_hash,
      tier: billed.has(ids[index] as string) ? undefined : value.tier,
      createdAt: value.created_at,
    };
    const owner = emailOwners.get(wanted.email);
    if (owner !== undefined && owner !== wanted.id) {
      outcomes.push({ skipped: "the e-mail belongs to another account" });
      continue;
    }
    const row = existing.get(wanted.id);
    const outcome = outcomeOf(row, (stored) => Object.keys(changesTo(stored, wanted, authHashed)).length > 0);
    if (outcome === "created") inserts.push(wanted);
    if (outcome === "updated" && row) await updateUser(tx, row, changesTo(row, wanted, authHashed));
    outcomes.push(outcome);
  }
  await insertUsers(tx, secrets, inserts);
  return outcomes;
}

/** Users billing has a customer row for: billing decides their tier. */
async function billedUsers(tx: Database, ids: string[]): Promise<Set<string>> {
  const rows = await tx.select({ userId: customers.userId }).from(customers).where(inArray(customers.userId, ids));
  return new Set(rows.map((row) => row.userId));
}

async function insertUsers(tx: Database, secrets: AuthSecrets, wanted: Wanted[]): Promise<void> {
  if (wanted.length === 0) return;
  const rows = await Promise.all(
    wanted.map(async (user) => ({
      id: user.id,
      email: user.email,
      displayName: user.displayName,
      passwordHash: user.passwordHash,
      tier: user.tier ?? "free",
      encryptionKey: await wrapUserKey(secrets, user.id, newUserKey()),
      ...(user.createdAt && { createdAt: user.createdAt }),
    })),
  );
  // No ON CONFLICT: a row that appeared since the read (a concurrent run) fails the batch, which is
  // then applied line by line and counts that user as it finds it.
  await tx.insert(users).values(rows);
}

function changesTo(row: UserRow, wanted: Wanted, authHashed: AuthHashed): Partial<typeof users.$inferInsert> {
  const changes: Partial<typeof users.$inferInsert> = {};
  if (row.email !== wanted.email) changes.email = wanted.email;
  if (row.displayName !== wanted.displayName) changes.displayName = wanted.displayName;
  // A hash auth made (a sign-in replaced the imported one, or a password change) is newer than
  // any export: keeping it is what keeps a re-run from signing the user out.
  if (row.passwordHash !== wanted.passwordHash && !authHashed(row.passwordHash)) {
    changes.passwordHash = wanted.passwordHash;
  }
  if (wanted.tier !== undefined && row.tier !== wanted.tier) changes.tier = wanted.tier;
  if (wanted.createdAt && row.createdAt.getTime() !== wanted.createdAt.getTime()) changes.createdAt = wanted.createdAt;
  return changes;
}

async function updateUser(tx: Database, row: UserRow, changes: Partial<typeof users.$inferInsert>): Promise<void> {
  await tx
    .update(users)
    .set({ ...changes, updatedAt: new Date() })
    .where(eq(users.id, row.id));
  const reason = changes.passwordHash
    ? "password_changed"
    : changes.tier && tierRank(changes.tier) < tierRank(row.tier)
      ? "tier_downgrade"
      : undefined;
  if (reason) await revokeSessions(tx, { userId: row.id, reason });
}
