import { z } from "zod";
import { named } from "../shared/contract";
import { Tier } from "../shared/tiers";

const Email = z.email().max(254);
/** Strength is checked in the verb (it depends on the e-mail); the schema only bounds the size. */
const Password = z.string().min(1).max(256);
const DisplayName = z.string().trim().min(1).max(100);
/** What a client calls itself in the list of sessions; unset: its User-Agent. */
const DeviceName = z.string().trim().min(1).max(100);
/** The language of the user's mails. */
export const Locale = z.enum(["en", "it"]);
export type Locale = z.infer<typeof Locale>;
/** A token from a mailed link (256 bits, base64url); the bound only keeps junk out. */
const MailedToken = z.string().min(1).max(200);

export const RegisterInput = named(
  "RegisterInput",
  z.strictObject({
    email: Email,
    password: Password,
    display_name: DisplayName.optional(),
    device_name: DeviceName.optional(),
  }),
);
export type RegisterInput = z.infer<typeof RegisterInput>;

export const LoginInput = named(
  "LoginInput",
  z.strictObject({ email: Email, password: Password, device_name: DeviceName.optional() }),
);
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
      locale: Locale.optional(),
      /** A new address: it takes effect once the link mailed to it is followed. */
      email: Email.optional(),
      current_password: Password.optional(),
      new_password: Password.optional(),
    })
    .refine(
      (input) =>
        (input.new_password === undefined && input.email === undefined) === (input.current_password === undefined),
      {
        message: "current_password goes with new_password or email, and only with them",
        path: ["current_password"],
      },
    ),
);
export type UpdateMeInput = z.infer<typeof UpdateMeInput>;

export const User = named(
  "User",
  z.object({
    id: z.string(),
    email: z.string(),
    display_name: z.string().nullable(),
    tier: Tier,
    locale: Locale,
    /** Whether the address was confirmed through the link mailed to it. */
    email_verified: z.boolean(),
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

export const ForgotPasswordInput = named("ForgotPasswordInput", z.strictObject({ email: Email }));
export type ForgotPasswordInput = z.infer<typeof ForgotPasswordInput>;

export const ResetPasswordInput = named(
  "ResetPasswordInput",
  z.strictObject({ token: MailedToken, password: Password }),
);
export type ResetPasswordInput = z.infer<typeof ResetPasswordInput>;

export const VerifyEmailInput = named("VerifyEmailInput", z.strictObject({ token: MailedToken }));
export type VerifyEmailInput = z.infer<typeof VerifyEmailInput>;

/** The answer to a request that may send a mail: the same whether or not one is sent. */
export const MailAccepted = named("MailAccepted", z.object({ status: z.literal("accepted") }));
export type MailAccepted = z.infer<typeof MailAccepted>;

/** A followed confirmation link: the address confirmed (`email_verify`) or now the account's (`email_change`). */
export const EmailVerified = named(
  "EmailVerified",
  z.object({ purpose: z.enum(["email_verify", "email_change"]), email: z.string() }),
);
export type EmailVerified = z.infer<typeof EmailVerified>;

/** One signed-in device: a session, its refresh tokens and the access tokens minted from them. */
export const SessionInfo = named(
  "SessionInfo",
  z.object({
    id: z.string(),
    device_name: z.string().nullable(),
    created_at: z.string(),
    /** The last refresh (the sign-in for a session never refreshed). */
    last_used_at: z.string(),
    /** The session of the access token that asked. */
    current: z.boolean(),
  }),
);
export type SessionInfo = z.infer<typeof SessionInfo>;

export const SessionList = named("SessionList", z.object({ sessions: z.array(SessionInfo) }));
export type SessionList = z.infer<typeof SessionList>;

export const SessionParams = z.object({ id: z.uuid() });
export type SessionParams = z.infer<typeof SessionParams>;

/** Deleting the account asks for the password again, as a password change does. */
export const DeleteAccountInput = named("DeleteAccountInput", z.strictObject({ password: Password }));
export type DeleteAccountInput = z.infer<typeof DeleteAccountInput>;

/** A deletion accepted: sessions ended now, data erased by every service in the background. */
export const AccountDeletion = named(
  "AccountDeletion",
  z.object({ status: z.literal("deleting"), deleted_at: z.string() }),
);
export type AccountDeletion = z.infer<typeof AccountDeletion>;

/** A data export: `pending` while the services send their parts, `ready` to download for 24 h. */
export const DataExport = named(
  "DataExport",
  z.object({
    id: z.string(),
    status: z.enum(["pending", "ready", "failed", "expired"]),
    requested_at: z.string(),
    ready_at: z.string().nullable(),
    expires_at: z.string().nullable(),
    /** Why a failed export failed (e.g. `part_too_large`). */
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
  }),
);
export type DataExport = z.infer<typeof DataExport>;

export const ExportParams = z.object({ id: z.uuid() });
export type ExportParams = z.infer<typeof ExportParams>;
