import { createHash } from "node:crypto";
import { decodeProtectedHeader, type JWTPayload, jwtVerify, type ProtectedHeaderParameters } from "jose";
import { z } from "zod";
import { ConfigError, type Env, readConfigFile } from "../env";
import { userIdFor } from "../legacy-ids";
import type { Logger } from "../logger";
import type { Metrics } from "../metrics";
import { Tier } from "../tiers";
import {
  type AuthUser,
  DEFAULT_CLOCK_TOLERANCE_S,
  MAX_TOKEN_LENGTH,
  rejectionOf,
  TokenError,
  type TokenVerifier,
} from "./verifier";

/** The monolith signed its access tokens with one shared HMAC secret. */
export const LEGACY_TOKEN_ALG = "HS256";

/** The header the monolith wrote (PyJWT's): the algorithm and maybe `typ`, never a key id. */
const LEGACY_HEADER_FIELDS = new Set(["alg", "typ"]);

/**
 * The monolith's claims, exactly: anything more (`iss`, `aud`, `jti`, `sid`, `nbf`) is not a token
 * it issued. `sub` is the monolith's user id (a string, or the integer some JWT libraries write),
 * mapped to the user's id here as the import maps it (`userIdFor`: a UUID is kept, any other id
 * derived), so a token names the same account its user was imported as.
 */
export const LegacyClaims = z
  .object({
    sub: z.union([z.string().trim().min(1).max(128), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)]),
    tier: Tier,
    exp: z.number(),
    iat: z.number().optional(),
  })
  .strict();
export type LegacyClaims = z.infer<typeof LegacyClaims>;

/**
 * The bounded period during which the monolith's HS256 access tokens are still honoured, so the
 * devices signed in to the monolith keep working until their next sign-in or token refresh here.
 */
export interface LegacyTokenWindow {
  /** The monolith's HMAC secret. */
  secret: Uint8Array;
  /** The first instant at which no legacy token is accepted any more. */
  until: Date;
  /** Milliseconds since the epoch; injectable so tests can stand on either side of `until`. */
  now?: () => number;
  clockToleranceS?: number;
  /** Called on each accepted legacy token: the metric and log that tell when the window can close. */
  onAccepted?: (user: AuthUser) => void;
}

/**
 * A verifier that also accepts the monolith's tokens while the window is open, and otherwise is
 * `verifier` unchanged. Only a token whose header says HS256 and carries no `kid` is checked
 * against the legacy secret, and only with that secret and that algorithm: an RS256 key is never
 * used as an HMAC secret (the alg-confusion attack), and every token of ours (which always has a
 * `kid`) goes to `verifier`, which refuses HS256 as it always has. Once the window closes, HS256
 * tokens reach `verifier` too and are refused the same way.
 *
 * Revocation: a legacy token has no `sid`, so `withRevocations` (session ids only) cannot end it,
 * and auth keeps no per-user "tokens before this instant are void" mark to apply instead. A logout,
 * "log out everywhere" or a password change therefore ends the user's sessions here but not a
 * monolith token, which lives until its own `exp` or the window's end, whichever comes first.
 * Closing the window (unsetting the two variables) is the way to end them all.
 */
export function withLegacyTokens(verifier: TokenVerifier, window: LegacyTokenWindow | undefined): TokenVerifier {
  if (!window) return verifier;
  return {
    verify(token) {
      if (!isLegacyCandidate(token) || !isOpen(window)) return verifier.verify(token);
      return verifyLegacyToken(token, window);
    },
  };
}

/** HS256 with no `kid`: the only shape the legacy path looks at. Unparsable tokens stay with the main verifier. */
function isLegacyCandidate(token: string): boolean {
  if (!token || token.length > MAX_TOKEN_LENGTH) return false;
  try {
    const header = decodeProtectedHeader(token);
    return header.alg === LEGACY_TOKEN_ALG && !Object.hasOwn(header, "kid");
  } catch {
    return false;
  }
}

function isOpen(window: LegacyTokenWindow): boolean {
  return nowMs(window) < window.until.getTime();
}

async function verifyLegacyToken(token: string, window: LegacyTokenWindow): Promise<AuthUser> {
  try {
    if (!hasLegacyHeader(decodeProtectedHeader(token))) throw new TokenError("token_malformed");
    const { payload } = await jwtVerify(token, window.secret, {
      algorithms: [LEGACY_TOKEN_ALG],
      clockTolerance: window.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S,
      currentDate: new Date(nowMs(window)),
      requiredClaims: ["sub", "exp"],
    });
    const user = legacyUser(token, parseLegacyClaims(payload, window), window);
    window.onAccepted?.(user);
    return user;
  } catch (error) {
    throw error instanceof TokenError ? error : new TokenError(rejectionOf(error));
  }
}

/** Parameters such as `jku`, `jwk`, `x5u` or `crit` were never the monolith's and are not honoured. */
function hasLegacyHeader(header: ProtectedHeaderParameters): boolean {
  return Object.keys(header).every((field) => LEGACY_HEADER_FIELDS.has(field));
}

function parseLegacyClaims(payload: JWTPayload, window: LegacyTokenWindow): LegacyClaims {
  const claims = LegacyClaims.safeParse(payload);
  if (!claims.success) throw new TokenError("token_claims_invalid");
  const toleranceS = window.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S;
  if (claims.data.iat !== undefined && claims.data.iat > nowMs(window) / 1000 + toleranceS) {
    throw new TokenError("token_not_yet_valid");
  }
  return claims.data;
}

/**
 * The monolith's tokens have no `jti`: a digest of the token names it instead, the same in every
 * service. It expires at its `exp` or at the window's end if that comes first, so a device socket
 * opened with it is closed when the window closes rather than living on to a later `exp`.
 */
function legacyUser(token: string, claims: LegacyClaims, window: LegacyTokenWindow): AuthUser {
  return {
    userId: userIdFor(String(claims.sub)),
    tier: claims.tier,
    tokenId: legacyTokenId(token),
    expiresAt: Math.min(claims.exp, Math.floor(window.until.getTime() / 1000)),
  };
}

export function legacyTokenId(token: string): string {
  return `legacy:${createHash("sha256").update(token).digest("base64url")}`;
}

function nowMs(window: LegacyTokenWindow): number {
  return window.now?.() ?? Date.now();
}

/**
 * The window from LEGACY_JWT_SECRET_FILE and LEGACY_JWT_UNTIL (loadEnv has made sure both or
 * neither are set), counted in `auth_legacy_tokens_total` and logged at debug on every acceptance.
 */
export function legacyTokenWindowFromEnv(
  env: Pick<Env, "LEGACY_JWT_SECRET_FILE" | "LEGACY_JWT_UNTIL">,
  deps: { metrics: Metrics; logger: Logger; now?: () => number },
): LegacyTokenWindow | undefined {
  if (!env.LEGACY_JWT_SECRET_FILE || !env.LEGACY_JWT_UNTIL) return undefined;
  const accepted = deps.metrics.counter(
    "auth_legacy_tokens_total",
    "Access tokens of the monolith (HS256) accepted; the legacy window can close once this stops growing",
  );
  const logger = deps.logger.child({ module: "legacy-tokens" });
  return {
    secret: legacySecret(env.LEGACY_JWT_SECRET_FILE),
    until: env.LEGACY_JWT_UNTIL,
    now: deps.now,
    onAccepted(user) {
      accepted.inc();
      logger.debug({ user_id: user.userId, expires_at: user.expiresAt }, "legacy access token accepted");
    },
  };
}

/**
 * The secret as the monolith used it: the file's text without the line break an editor or `echo`
 * leaves at its end. A PEM in this file would be exactly the mistake alg confusion feeds on, so it
 * is refused, as is an empty file.
 */
function legacySecret(file: string): Uint8Array {
  const secret = readConfigFile("LEGACY_JWT_SECRET_FILE", file).replace(/\r?\n$/, "");
  if (secret.length === 0) throw new ConfigError(`invalid configuration: LEGACY_JWT_SECRET_FILE: ${file} is empty`);
  if (secret.includes("-----BEGIN")) {
    throw new ConfigError(
      `invalid configuration: LEGACY_JWT_SECRET_FILE: ${file} holds a PEM key, not the monolith's HMAC secret`,
    );
  }
  return new TextEncoder().encode(secret);
}
