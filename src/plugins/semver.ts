/**
 * Semantic Versioning 2.0.0 (semver.org): the regular expression the specification suggests, and
 * its precedence rules. Build metadata (`+...`) is ignored by precedence, so `1.0.0+b` does not come
 * after `1.0.0`: a plugin's versions must rise in precedence, not only in spelling.
 */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

interface Parsed {
  core: [bigint, bigint, bigint];
  prerelease: string[];
}

function parse(version: string): Parsed {
  const match = SEMVER.exec(version);
  if (!match) throw new Error(`not a semantic version: ${version}`);
  // BigInt: the specification puts no bound on a number, and 2^53 must not compare equal to 2^53+1.
  return {
    core: [BigInt(match[1] as string), BigInt(match[2] as string), BigInt(match[3] as string)],
    prerelease: match[4] ? match[4].split(".") : [],
  };
}

const NUMERIC = /^\d+$/;

function compareIdentifiers(a: string, b: string): number {
  const aNumeric = NUMERIC.test(a);
  const bNumeric = NUMERIC.test(b);
  if (aNumeric && bNumeric) {
    const [x, y] = [BigInt(a), BigInt(b)];
    return x === y ? 0 : x < y ? -1 : 1;
  }
  // Numeric identifiers always have lower precedence than alphanumeric ones.
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Negative when `a` precedes `b`, positive when it follows, 0 when they have the same precedence. */
export function compareVersions(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const [p, q] = [x.core[i] as bigint, y.core[i] as bigint];
    if (p !== q) return p < q ? -1 : 1;
  }
  // A pre-release precedes its release: 1.0.0-rc.1 < 1.0.0.
  if (x.prerelease.length === 0 || y.prerelease.length === 0) {
    return y.prerelease.length - x.prerelease.length === 0 ? 0 : x.prerelease.length === 0 ? 1 : -1;
  }
  for (let i = 0; i < Math.min(x.prerelease.length, y.prerelease.length); i++) {
    const order = compareIdentifiers(x.prerelease[i] as string, y.prerelease[i] as string);
    if (order !== 0) return order;
  }
  return x.prerelease.length - y.prerelease.length === 0 ? 0 : x.prerelease.length < y.prerelease.length ? -1 : 1;
}

/** The version of highest precedence, or undefined for none. */
export function latestVersion(versions: string[]): string | undefined {
  return versions.reduce<string | undefined>(
    (best, each) => (best === undefined || compareVersions(each, best) > 0 ? each : best),
    undefined,
  );
}
