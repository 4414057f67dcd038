import {
  type CryptoKey,
  createRemoteJWKSet,
  importJWK,
  type JSONWebKeySet,
  type JWTHeaderParameters,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import { z } from "zod";
import { readConfigFile } from "../env";
import { ServiceError } from "../errors";
import { Tier } from "../tiers";
import { fileList, type PublicKeyEntry, publicKeysFromPem, SIGNING_ALG } from "./key-ring";

export const ACCESS_TOKEN_ALG = SIGNING_ALG;

export const AccessClaims = z.object({
  sub: z.string().min(1),
  tier: Tier,
  iat: z.number(),
  exp: z.number(),
  iss: z.string(),
  jti: z.string().min(1),
  /** The refresh-token family (session) the token was issued for; logout revokes it. */
  sid: z.string().min(1).optional(),
});
export type AccessClaims = z.infer<typeof AccessClaims>;

export interface AuthUser {
  userId: string;
  tier: Tier;
  tokenId: string;
  expiresAt: number;
  sessionId?: string;
}

/**
 * Why a token was refused. Logged for operators; the client always sees the same generic 401 so a
 * caller probing tokens learns nothing.
 */
export type TokenRejection =
  | "token_missing"
  | "token_malformed"
  | "token_expired"
  | "token_not_yet_valid"
  | "token_alg_not_allowed"
  | "token_signature_invalid"
  | "token_unknown_key"
  | "token_issuer_invalid"
  | "token_audience_invalid"
  /** Lives longer than this deployment issues tokens for: it could outlast any revocation. */
  | "token_lifetime_invalid"
  | "token_claims_invalid"
  /** Valid, but its session was ended (logout, password change, refresh-token reuse). */
  | "token_revoked"
  | "token_keys_unavailable";

/** The one thing a client learns about a refused token. */
export const TOKEN_REJECTED_MESSAGE = "missing or invalid access token";

export class TokenError extends ServiceError {
  constructor(readonly reason: TokenRejection) {
    // Keys we cannot fetch are our outage, not the caller's bad token: 503 keeps clients from
    // throwing away a good session.
    super(
      reason === "token_keys_unavailable" ? "auth_unavailable" : "unauthorized",
      reason === "token_keys_unavailable" ? 503 : 401,
      reason === "token_keys_unavailable" ? "token keys are unavailable, try again shortly" : TOKEN_REJECTED_MESSAGE,
      reason === "token_keys_unavailable" ? { "retry-after": "5" } : { "www-authenticate": 'Bearer realm="adiuva"' },
    );
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<AuthUser>;
}

export type KeySource =
  | { kind: "jwks-url"; url: string; timeoutMs?: number; cooldownMs?: number; cacheMaxAgeMs?: number }
  /** One or more PEM blocks (SPKI public keys, or a PKCS#8 private key reduced to its public half). */
  | { kind: "pem"; pem: string; kid?: string }
  | { kind: "jwks"; jwks: () => JSONWebKeySet }
  /** Auth's own ring: read on every call so a reload takes effect at once. */
  | { kind: "keys"; keys: () => PublicKeyEntry[] };

/** Tokens are a few hundred bytes; anything far larger is refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;

/** Seconds a verifier accepts a token past its `exp` or before its `iat` (clock skew between hosts). */
export const DEFAULT_CLOCK_TOLERANCE_S = 5;

/** What a token must say about where it comes from, whom it is for and how long it lives. */
export interface TokenPolicy {
  issuer: string;
  audience: string;
  /** The access-token lifetime auth issues; a token with a longer `exp - iat` is refused. */
  maxLifetimeS: number;
  clockToleranceS?: number;
}

/** The policy of this deployment's tokens, as auth issues them. */
export const tokenPolicy = (env: { JWT_ISSUER: string; JWT_AUDIENCE: string; ACCESS_TOKEN_TTL_S: number }) => ({
  issuer: env.JWT_ISSUER,
  audience: env.JWT_AUDIENCE,
  maxLifetimeS: env.ACCESS_TOKEN_TTL_S,
});

/**
 * Builds a verifier that accepts only RS256 tokens from the policy's issuer, for its audience, no
 * longer-lived than it allows, whose `kid` names a known key. The monolith's HS256 tokens are
 * accepted beside it only through `withLegacyTokens` (`legacy-tokens.ts`), during a bounded window.
 */
export function createTokenVerifier(options: { source: KeySource } & TokenPolicy): TokenVerifier {
  const getKey = keyResolver(options.source);
  const tolerance = options.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S;
  return {
    async verify(token) {
      if (!token) throw new TokenError("token_missing");
      if (token.length > MAX_TOKEN_LENGTH) throw new TokenError("token_malformed");
      try {
        const { payload } = await jwtVerify(token, getKey, {
          algorithms: [ACCESS_TOKEN_ALG],
          issuer: options.issuer,
          audience: options.audience,
          clockTolerance: tolerance,
          requiredClaims: ["sub", "exp", "iat", "jti", "iss", "aud"],
        });
        const claims = AccessClaims.safeParse(payload);
        if (!claims.success) throw new TokenError("token_claims_invalid");
        if (claims.data.iat > Date.now() / 1000 + tolerance) throw new TokenError("token_not_yet_valid");
        if (claims.data.exp - claims.data.iat > options.maxLifetimeS) throw new TokenError("token_lifetime_invalid");
        return {
          userId: claims.data.sub,
          tier: claims.data.tier,
          tokenId: claims.data.jti,
          expiresAt: claims.data.exp,
          ...(claims.data.sid ? { sessionId: claims.data.sid } : {}),
        };
      } catch (error) {
        throw error instanceof TokenError ? error : new TokenError(rejectionOf(error));
      }
    },
  };
}

function keyResolver(source: KeySource): JWTVerifyGetKey {
  switch (source.kind) {
    case "jwks-url": {
      // jose caches the set, refetches on an unknown kid (at most once per cooldown) and times out the fetch.
      const remote = createRemoteJWKSet(new URL(source.url), {
        timeoutDuration: source.timeoutMs ?? 3000,
        cooldownDuration: source.cooldownMs ?? 30_000,
        cacheMaxAge: source.cacheMaxAgeMs ?? 10 * 60_000,
      });
      return (header, token) => {
        requireKid(header);
        return remote(header, token);
      };
    }
    case "pem": {
      const entries = publicKeysFromPem(source.pem).then((all) =>
        source.kid ? all.filter((entry) => entry.kid === source.kid) : all,
      );
      return async (header) => lookup(await entries, requireKid(header));
    }
    case "jwks": {
      // Imported keys are cached per published set; a new set (rotation) is imported once.
      let seen: JSONWebKeySet | undefined;
      let entries: Promise<Map<string, CryptoKey>> = Promise.resolve(new Map());
      return async (header) => {
        const kid = requireKid(header);
        const set = source.jwks();
        if (set !== seen) {
          seen = set;
          entries = importSet(set);
        }
        const key = (await entries).get(kid);
        if (!key) throw new joseErrors.JWKSNoMatchingKey();
        return key;
      };
    }
    case "keys":
      return async (header) => lookup(source.keys(), requireKid(header));
  }
}

function requireKid(header: JWTHeaderParameters): string {
  if (typeof header.kid !== "string" || header.kid.length === 0) throw new joseErrors.JWKSNoMatchingKey();
  return header.kid;
}

function lookup(entries: PublicKeyEntry[], kid: string): CryptoKey {
  const entry = entries.find((each) => each.kid === kid);
  if (!entry) throw new joseErrors.JWKSNoMatchingKey();
  return entry.key;
}

async function importSet(set: JSONWebKeySet): Promise<Map<string, CryptoKey>> {
  const map = new Map<string, CryptoKey>();
  for (const jwk of set.keys) {
    if (jwk.kty !== "RSA" || typeof jwk.kid !== "string" || (jwk.use !== undefined && jwk.use !== "sig")) continue;
    map.set(jwk.kid, (await importJWK({ ...jwk, alg: ACCESS_TOKEN_ALG }, ACCESS_TOKEN_ALG)) as CryptoKey);
  }
  return map;
}

/** The rejection a jose error stands for (also used by the legacy HS256 path, `legacy-tokens.ts`). */
export function rejectionOf(error: unknown): TokenRejection {
  if (error instanceof joseErrors.JWTExpired) return "token_expired";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "token_alg_not_allowed";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "token_signature_invalid";
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys)
    return "token_unknown_key";
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === "iss") return "token_issuer_invalid";
    if (error.claim === "aud") return "token_audience_invalid";
    if (error.claim === "nbf" || error.claim === "iat") return "token_not_yet_valid";
    return "token_claims_invalid";
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid)
    return "token_keys_unavailable";
  // A failed JWKS fetch surfaces as a TypeError (network) or a bare JOSEError about the response.
  if (error instanceof TypeError) return "token_keys_unavailable";
  if (error instanceof joseErrors.JOSEError && error.code === "ERR_JOSE_GENERIC") return "token_keys_unavailable";
  return "token_malformed";
}

/**
 * The verifier's key source from the environment. Mounted PEM files win over a JWKS URL; every
 * service also accepts the extra public keys of a rotation. With neither, the auth service
 * verifies with the public half of its own private key.
 */
export function keySourceFromEnv(env: {
  JWT_PUBLIC_KEY_FILE?: string;
  JWT_EXTRA_PUBLIC_KEY_FILES?: string;
  JWT_PRIVATE_KEY_FILE?: string;
  JWKS_URL?: string;
}): KeySource | undefined {
  const extras = fileList(env.JWT_EXTRA_PUBLIC_KEY_FILES).map((file) => ["JWT_EXTRA_PUBLIC_KEY_FILES", file] as const);
  const pemFiles: (readonly [string, string])[] = fileList(env.JWT_PUBLIC_KEY_FILE).map((file) => [
    "JWT_PUBLIC_KEY_FILE",
    file,
  ]);
  if (pemFiles.length === 0 && env.JWKS_URL) return { kind: "jwks-url", url: env.JWKS_URL };
  if (pemFiles.length === 0 && env.JWT_PRIVATE_KEY_FILE)
    pemFiles.push(["JWT_PRIVATE_KEY_FILE", env.JWT_PRIVATE_KEY_FILE]);
  if (pemFiles.length === 0) return undefined;
  return {
    kind: "pem",
    pem: [...pemFiles, ...extras].map(([variable, file]) => readConfigFile(variable, file)).join("\n"),
  };
}

/** `Authorization: Bearer <token>` -> token, or "" when absent or of another scheme. */
export function bearerToken(header: string | null | undefined): string {
  if (!header) return "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? "";
}
