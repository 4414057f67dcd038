import { inArray } from "drizzle-orm";
import { refreshTokens, sessions } from "../auth/tables";
import type { Database } from "../shared/db";
import { RefreshTokenLine } from "./formats";
import { legacyUuid } from "./ids";
import type { Numbered } from "./jsonl";
import { knownUsers, missingUser } from "./known-users";
import type { Outcome } from "./report";
import { firstSeen, type Stage } from "./stage";

/**
 * refresh_tokens.jsonl → auth: each legacy token becomes a session of its own (a new family) with
 * one unused refresh token whose hash is the legacy token's. POST /api/v1/auth/refresh then
 * exchanges it through the ordinary rotation (an RS256 pair, the successor derived from the
 * token), and presenting it again after the grace window is reuse and ends that session.
 *
 * An imported token is never changed by a later run: it may have been rotated or revoked since,
 * and the file cannot know.
 */
export function refreshTokensStage(now: () => Date): Stage<typeof RefreshTokenLine> {
  const sameId = firstSeen("id");
  const sameHash = firstSeen("token_sha256");
  return {
    entity: "refresh_tokens",
    schema: RefreshTokenLine,
    batchSize: 1000,
    admit: (token, line) => sameId(token.id, line) ?? sameHash(token.token_sha256, line),
    apply: (tx, lines) => applyTokens(tx, lines, now()),
  };
}

async function applyTokens(tx: Database, lines: Array<Numbered<RefreshTokenLine>>, now: Date): Promise<Outcome[]> {
  const users = await knownUsers(
    tx,
    lines.map((line) => line.value.user_id),
  );
  const tokenIds = lines.map((line) => legacyUuid("refresh_token", line.value.id));
  const stored = await tx
    .select({ id: refreshTokens.id, tokenHash: refreshTokens.tokenHash })
    .from(refreshTokens)
    .where(
      inArray(
        refreshTokens.tokenHash,
        lines.map((line) => line.value.token_sha256),
      ),
    );
  const existingIds = new Set(
    (await tx.select({ id: refreshTokens.id }).from(refreshTokens).where(inArray(refreshTokens.id, tokenIds))).map(
      (row) => row.id,
    ),
  );
  const hashOwners = new Map(stored.map((row) => [row.tokenHash, row.id] as const));
  const outcomes: Outcome[] = [];
  const newSessions: Array<typeof sessions.$inferInsert> = [];
  const newTokens: Array<typeof refreshTokens.$inferInsert> = [];
  for (const [index, { value }] of lines.entries()) {
    const tokenId = tokenIds[index] as string;
    const userId = users.idOf(value.user_id);
    const owner = hashOwners.get(value.token_sha256);
    if (existingIds.has(tokenId)) outcomes.push("unchanged");
    else if (!userId) outcomes.push(missingUser(value.user_id));
    else if (owner !== undefined) outcomes.push({ skipped: "auth already has a refresh token with this hash" });
    else if (value.expires_at <= now) outcomes.push({ skipped: "expired" });
    else {
      const familyId = legacyUuid("session", value.id);
      const createdAt = value.created_at ?? now;
      newSessions.push({ id: familyId, userId, createdAt });
      newTokens.push({
        id: tokenId,
        familyId,
        userId,
        tokenHash: value.token_sha256,
        expiresAt: value.expires_at,
        createdAt,
      });
      outcomes.push("created");
    }
  }
  if (newSessions.length > 0) {
    await tx.insert(sessions).values(newSessions);
    await tx.insert(refreshTokens).values(newTokens);
  }
  return outcomes;
}
