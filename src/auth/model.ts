import { z } from "zod";
import { named } from "../shared/contract";
import { Tier } from "../shared/tiers";

const Email = z.email().max(254);
/** Strength is checked in the verb (it depends on the e-mail); the schema only bounds the size. */
const Password = z.string().min(1).max(256);
const DisplayName = z.string().trim().min(1).max(100);

export const RegisterInput = named(
  "RegisterInput",
  z.strictObject({ email: Email, password: Password, display_name: DisplayName.optional() }),
);
export type RegisterInput = z.infer<typeof RegisterInput>;

export const LoginInput = named("LoginInput", z.strictObject({ email: Email, password: Password }));
export type LoginInput = z.infer<typeof LoginInput>;

export const RefreshInput = named("RefreshInput", z.strictObject({ refresh_token: z.string().min(1).max(200) }));
export type RefreshInput = z.infer<typeof RefreshInput>;

export const LogoutInput = named("LogoutInput", z.strictObject({ all: z.boolean().optional() })).optional();
export type LogoutInput = z.infer<typeof LogoutInput>;

export const UpdateMeInput = named(
  "UpdateMeInput",
  z
    .strictObject({
      display_name: DisplayName.nullable().optional(),
      current_password: Password.optional(),
      new_password: Password.optional(),
    })
    .refine((input) => (input.new_password === undefined) === (input.current_password === undefined), {
      message: "new_password and current_password go together",
      path: ["current_password"],
    }),
);
export type UpdateMeInput = z.infer<typeof UpdateMeInput>;

export const User = named(
  "User",
  z.object({
    id: z.string(),
    email: z.string(),
    display_name: z.string().nullable(),
    tier: Tier,
    created_at: z.string(),
  }),
);
export type User = z.infer<typeof User>;

export const TokenPair = named(
  "TokenPair",
  z.object({
    access_token: z.string(),
    token_type: z.literal("Bearer"),
    /** Seconds until the access token expires. */
    expires_in: z.number(),
    refresh_token: z.string(),
  }),
);
export type TokenPair = z.infer<typeof TokenPair>;

export const Session = named("Session", TokenPair.extend({ user: User }));
export type Session = z.infer<typeof Session>;

export const EncryptionKey = named(
  "EncryptionKey",
  z.object({
    key: z.string(),
    algorithm: z.literal("AES-256-GCM"),
    encoding: z.literal("base64"),
  }),
);
export type EncryptionKey = z.infer<typeof EncryptionKey>;

/** The public keys that verify access tokens (RFC 7517), current and announced ones. */
export const Jwks = named(
  "Jwks",
  z.object({
    keys: z.array(
      z.looseObject({
        kty: z.string(),
        kid: z.string(),
        alg: z.string(),
        use: z.string(),
        n: z.string(),
        e: z.string(),
      }),
    ),
  }),
);
export type Jwks = z.infer<typeof Jwks>;
