import { and, desc, eq } from "drizzle-orm";
import { notFound } from "../shared/errors";
import { limitsFor } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import type { AgentContext } from "./context";
import { configLimitReached, countConfigs, withUserLock } from "./limits";
import type { CreateConfigInput, UpdateConfigInput } from "./model";
import { agentConfigs } from "./tables";
import { assertId, parseConfig, typeFor } from "./validate";

type ConfigRow = typeof agentConfigs.$inferSelect;

export const configView = (row: ConfigRow) => ({
  id: row.id,
  type: row.type,
  kind: row.kind,
  name: row.name,
  config: row.config,
  device_id: row.deviceId,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});
export type ConfigView = ReturnType<typeof configView>;

/** Creates a configuration; the per-user count and the insert happen under one lock, so the limit is exact. */
export async function createConfig({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, CreateConfigInput>): Promise<ConfigView> {
  const type = typeFor(input.type, user);
  const config = parseConfig(type, input.config);
  const limit = limitsFor(user.tier).agentConfigs;
  const row = await withUserLock(ctx.db, user.userId, async (tx) => {
    if ((await countConfigs(tx, user.userId)) >= limit) throw configLimitReached(limit);
    const [inserted] = await tx
      .insert(agentConfigs)
      .values({
        userId: user.userId,
        type: type.type,
        kind: type.kind,
        name: input.name ?? type.name,
        config,
        deviceId: input.device_id ?? null,
      })
      .returning();
    return inserted as ConfigRow;
  });
  ctx.metrics.counter("agent_configs_created_total", "Agent configurations created", ["type"]).inc({ type: type.type });
  return configView(row);
}

export async function listConfigs({ ctx, user }: VerbArgs<AgentContext>): Promise<{ configs: ConfigView[] }> {
  const rows = await ctx.db
    .select()
    .from(agentConfigs)
    .where(eq(agentConfigs.userId, user.userId))
    .orderBy(desc(agentConfigs.createdAt));
  return { configs: rows.map(configView) };
}

/** The user's own configuration row; another user's id is indistinguishable from a missing one. */
export async function findConfig(ctx: Pick<AgentContext, "db">, userId: string, id: string): Promise<ConfigRow> {
  assertId(id, "agent configuration");
  const [row] = await ctx.db
    .select()
    .from(agentConfigs)
    .where(and(eq(agentConfigs.id, id), eq(agentConfigs.userId, userId)));
  if (!row) throw notFound("agent configuration");
  return row;
}

export async function getConfig({ ctx, user, input }: VerbArgs<AgentContext, { id: string }>): Promise<ConfigView> {
  return configView(await findConfig(ctx, user.userId, input.id));
}

export async function updateConfig({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, { id: string; changes: UpdateConfigInput }>): Promise<ConfigView> {
  const existing = await findConfig(ctx, user.userId, input.id);
  const type = typeFor(existing.type, user);
  const config = input.changes.config === undefined ? existing.config : parseConfig(type, input.changes.config);
  const [row] = await ctx.db
    .update(agentConfigs)
    .set({
      name: input.changes.name ?? existing.name,
      config,
      deviceId: input.changes.device_id === undefined ? existing.deviceId : input.changes.device_id,
      updatedAt: new Date(),
    })
    .where(and(eq(agentConfigs.id, existing.id), eq(agentConfigs.userId, user.userId)))
    .returning();
  if (!row) throw notFound("agent configuration");
  return configView(row);
}

export async function deleteConfig({ ctx, user, input }: VerbArgs<AgentContext, { id: string }>): Promise<void> {
  assertId(input.id, "agent configuration");
  const deleted = await ctx.db
    .delete(agentConfigs)
    .where(and(eq(agentConfigs.id, input.id), eq(agentConfigs.userId, user.userId)))
    .returning({ id: agentConfigs.id });
  if (deleted.length === 0) throw notFound("agent configuration");
}
