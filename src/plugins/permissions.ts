import { sql } from "drizzle-orm";
import { ServiceError } from "../shared/errors";
import type { Grants, Permissions } from "./model";

/** What a version asks for, or what a user granted: the manifest's three lists. */
export interface PermissionSet {
  deviceTools: string[];
  origins: string[];
  data: string[];
}

/** The three kinds of permission, as the manifest names them and as the HTTP API does. */
const KINDS = [
  ["deviceTools", "device_tools"],
  ["origins", "origins"],
  ["data", "data"],
] as const;

/** A manifest's permissions in the HTTP API's words. */
export const toWire = (set: PermissionSet): Permissions => ({
  device_tools: [...set.deviceTools],
  origins: [...set.origins],
  data: [...set.data],
});

/** What `to` asks for that `from` did not. */
export function newlyAsked(from: PermissionSet, to: PermissionSet): PermissionSet {
  return {
    deviceTools: to.deviceTools.filter((each) => !from.deviceTools.includes(each)),
    origins: to.origins.filter((each) => !from.origins.includes(each)),
    data: to.data.filter((each) => !from.data.includes(each)),
  };
}

export const isEmpty = (set: PermissionSet) =>
  set.deviceTools.length === 0 && set.origins.length === 0 && set.data.length === 0;

/**
 * The user's grants, checked against what the version asks for: each entry must be asked for
 * (422 `permission_not_requested` naming it), duplicates are dropped. Granting less is allowed.
 */
export function grantsWithin(grants: Grants, asked: PermissionSet): PermissionSet {
  const problems: Array<{ path: string; message: string }> = [];
  const result: PermissionSet = { deviceTools: [], origins: [], data: [] };
  for (const [manifestKey, wireKey] of KINDS) {
    const allowed = asked[manifestKey];
    grants[wireKey].forEach((value, index) => {
      if (!allowed.includes(value)) {
        problems.push({ path: `grants.${wireKey}.${index}`, message: "the plugin does not ask for this" });
      } else if (!result[manifestKey].includes(value)) result[manifestKey].push(value);
    });
  }
  if (problems.length > 0) {
    throw new ServiceError(
      "permission_not_requested",
      422,
      "a grant names something the plugin does not ask for",
      {},
      problems.slice(0, 20),
    );
  }
  return result;
}

/** A text[] literal for SQL built from values as parameters (drizzle would spread a bare array). */
export function textArray(values: readonly string[]) {
  if (values.length === 0) return sql`'{}'::text[]`;
  return sql`array[${sql.join(
    values.map((value) => sql`${value}`),
    sql`, `,
  )}]::text[]`;
}
