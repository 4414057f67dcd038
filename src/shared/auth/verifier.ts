import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  importSPKI,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import { z } from "zod";
import { ServiceError } from "../errors";
import { Tier } from "../tiers";

export const ACCESS_TOKEN_ALG = "RS256";

export const AccessClaims = z.object({
  sub: z.string().min(1),
  tier: Tier,
  iat: z.number(),
  exp: z.number(),
  iss: z.string(),
  jti: z.string().min(1),
});
export type AccessClaims = z.infer<typeof AccessClaims>;

export interface AuthUser {
  userId: string;
  tier: Tier;
  tokenId: string;
  expiresAt: number;
}

/**
 * Why a token was refused. Logged for operators; the client always sees the same generic 401 so a
 * caller probing tokens learns nothing.
 */
export type TokenRejection =
  | "token_missing"
  | "token_malformed"
  | "token_expired"
  | "token_alg_not_allowed"
  | "token_signature_invalid"
  | "token_unknown_key"
  | "token_claims_invalid"
  | "token_keys_unavailable";

export class TokenError extends ServiceError {
  constructor(readonly reason: TokenRejection) {
    super(
      reason === "token_missing" ? "unauthorized" : "invalid_token",
      401,
      reason === "token_missing" ? "missing bearer token" : "invalid or expired token",
    );
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<AuthUser>;
}

export type KeySource =
  | { kind: "jwks-url"; url: string; timeoutMs?: number }
  | { kind: "pem"; pem: string; kid?: string }
  | { kind: "jwks"; jwks: () => JSONWebKeySet };

/** Builds a verifier that accepts only RS256 tokens from `issuer`, with keys from one source. */
export function createTokenVerifier(options: {
  source: KeySource;
  issuer: string;
  clockToleranceS?: number;
}): TokenVerifier {
  const getKey = keyResolver(options.source);
  return {
    async verify(token) {
      if (!token) throw new TokenError("token_missing");
      try {
        const { payload } = await jwtVerify(token, getKey, {
          algorithms: [ACCESS_TOKEN_ALG],
          issuer: options.issuer,
          clockTolerance: options.clockToleranceS ?? 5,
          requiredClaims: ["sub", "exp", "iat", "jti"],
        });
        const claims = AccessClaims.safeParse(payload);
        if (!claims.success) throw new TokenError("token_claims_invalid");
        return {
          userId: claims.data.sub,
          tier: claims.data.tier,
          tokenId: claims.data.jti,
          expiresAt: claims.data.exp,
        };
      } catch (error) {
        throw error instanceof TokenError ? error : new TokenError(classify(error));
      }
    },
  };
}

function keyResolver(source: KeySource): JWTVerifyGetKey {
  switch (source.kind) {
    case "jwks-url":
      // jose caches the set, refetches on an unknown kid (with a cooldown) and times out the fetch.
      return createRemoteJWKSet(new URL(source.url), {
        timeoutDuration: source.timeoutMs ?? 3000,
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      });
    case "pem": {
      const key = importSPKI(source.pem, ACCESS_TOKEN_ALG);
      return async (header) => {
        if (source.kid && header.kid && header.kid !== source.kid) throw new joseErrors.JWKSNoMatchingKey();
        return key;
      };
    }
    case "jwks":
      // The set can change (rotation in the same process), so it is read on every call.
      return (header, token) => createLocalJWKSet(source.jwks())(header, token);
  }
}

function classify(error: unknown): TokenRejection {
  if (error instanceof joseErrors.JWTExpired) return "token_expired";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "token_alg_not_allowed";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "token_signature_invalid";
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys)
    return "token_unknown_key";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return "token_claims_invalid";
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid)
    return "token_keys_unavailable";
  if (error instanceof TypeError) return "token_keys_unavailable";
  return "token_malformed";
}

/** Reads the verifier's key source from the environment: a mounted PEM wins over a JWKS URL. */
export function keySourceFromEnv(env: { JWT_PUBLIC_KEY_FILE?: string; JWKS_URL?: string }): KeySource | undefined {
  if (env.JWT_PUBLIC_KEY_FILE) return { kind: "pem", pem: readFileSync(env.JWT_PUBLIC_KEY_FILE, "utf8") };
  if (env.JWKS_URL) return { kind: "jwks-url", url: env.JWKS_URL };
  return undefined;
}

/** `Authorization: Bearer <token>` -> token, or "" when absent or of another scheme. */
export function bearerToken(header: string | null | undefined): string {
  if (!header) return "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? "";
}
