import { limitsFor, tierRank } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import type { AgentContext } from "./context";
import { countConfigs } from "./limits";
import type { CanCreateInput } from "./model";
import { typeFor } from "./validate";

export interface CanCreateResult {
  allowed: boolean;
  limit: number;
  used: number;
  reason?: "tier_insufficient" | "config_limit_reached";
}

/** Whether the user may create one more configuration of `type` now (advisory: creation re-checks atomically). */
export async function canCreate({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, CanCreateInput>): Promise<CanCreateResult> {
  const type = typeFor(input.type);
  const limit = limitsFor(user.tier).agentConfigs;
  const used = await countConfigs(ctx.db, user.userId);
  if (tierRank(user.tier) < tierRank(type.minTier)) return { allowed: false, limit, used, reason: "tier_insufficient" };
  if (used >= limit) return { allowed: false, limit, used, reason: "config_limit_reached" };
  return { allowed: true, limit, used };
}
