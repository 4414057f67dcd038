import { inArray } from "drizzle-orm";
import { agentConfigs } from "../agent/tables";
import type { Database } from "../shared/db";
import { AgentConfigLine } from "./formats";
import { legacyUuid } from "./ids";
import type { Numbered } from "./jsonl";
import { knownUsers, missingUser } from "./known-users";
import type { Outcome } from "./report";
import { firstSeen, outcomeOf, type Stage } from "./stage";

type ConfigRow = typeof agentConfigs.$inferSelect;
type Wanted = Omit<ConfigRow, "createdAt" | "updatedAt"> & { createdAt: Date | undefined };

/**
 * agent_configs.jsonl → agent.agent_configs, validated by the API's own schemas (formats.ts). The
 * tier's limit on configurations and a type's minimum tier apply when one is created through the
 * API; imported ones are what the user already had, so they come in as they are.
 */
export function agentConfigsStage(): Stage<typeof AgentConfigLine> {
  const sameId = firstSeen("id");
  return {
    entity: "agent_configs",
    schema: AgentConfigLine,
    batchSize: 500,
    admit: (config, line) => sameId(config.id, line),
    apply: applyConfigs,
  };
}

async function applyConfigs(tx: Database, lines: Array<Numbered<AgentConfigLine>>): Promise<Outcome[]> {
  const known = await knownUsers(
    tx,
    lines.map((line) => line.value.userId),
  );
  const ids = lines.map((line) => legacyUuid("agent_config", line.value.id));
  const existing = new Map(
    (await tx.select().from(agentConfigs).where(inArray(agentConfigs.id, ids))).map((row) => [row.id, row] as const),
  );
  const outcomes: Outcome[] = [];
  for (const [index, { value }] of lines.entries()) {
    const userId = known.idOf(value.userId);
    if (!userId) {
      outcomes.push(missingUser(value.userId));
      continue;
    }
    const wanted: Wanted = { ...value, id: ids[index] as string, userId };
    const outcome = outcomeOf(existing.get(wanted.id), (row) => differs(row, wanted));
    if (outcome !== "unchanged") await upsert(tx, wanted);
    outcomes.push(outcome);
  }
  return outcomes;
}

async function upsert(tx: Database, wanted: Wanted): Promise<void> {
  const { id: _id, createdAt, ...changes } = wanted;
  const values = { ...wanted, createdAt: createdAt ?? new Date() };
  await tx
    .insert(agentConfigs)
    .values(values)
    .onConflictDoUpdate({
      target: agentConfigs.id,
      set: { ...changes, ...(createdAt && { createdAt }), updatedAt: new Date() },
    });
}

function differs(row: ConfigRow, wanted: Wanted): boolean {
  return (
    row.userId !== wanted.userId ||
    row.type !== wanted.type ||
    row.kind !== wanted.kind ||
    row.name !== wanted.name ||
    row.deviceId !== wanted.deviceId ||
    canonicalJson(row.config) !== canonicalJson(wanted.config) ||
    (wanted.createdAt !== undefined && row.createdAt.getTime() !== wanted.createdAt.getTime())
  );
}

/** JSON with object keys sorted: jsonb does not keep the order the file had. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, field) =>
    field && typeof field === "object" && !Array.isArray(field)
      ? Object.fromEntries(Object.entries(field).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : field,
  );
}
