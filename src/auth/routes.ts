import { Elysia } from "elysia";
import { z } from "zod";
import { clientIp } from "../shared/client-ip";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { routeRateLimit } from "../shared/rate-limit";
import { sanitizer } from "../shared/sanitizer";
import { type AuthContext, refreshGate } from "./context";
import { deleteAccount } from "./delete-account";
import { resendVerification, verifyEmail } from "./email-verify";
import { downloadExport, getExport, requestExport } from "./exports";
import { login } from "./login";
import { logout } from "./logout";
import {
  AccountDeletion,
  DataExport,
  DeleteAccountInput,
  EmailVerified,
  EncryptionKey,
  ExportParams,
  ForgotPasswordInput,
  Jwks,
  LoginInput,
  LogoutInput,
  MailAccepted,
  RefreshInput,
  RegisterInput,
  ResetPasswordInput,
  Session,
  SessionList,
  SessionParams,
  TokenPair,
  UpdateMeInput,
  User,
  VerifyEmailInput,
} from "./model";
import { endSession, listSessions } from "./my-sessions";
import { forgotPassword, resetPassword } from "./password-reset";
import { getEncryptionKey, getMe, updateMe } from "./profile";
import { refresh } from "./refresh";
import { register } from "./register";

/** Small bodies only: the largest is a profile update. */
const MAX_AUTH_BODY_BYTES = 4096;

/** Responses carrying tokens or keys must never be stored by a cache. */
const noStore = { "cache-control": "no-store", pragma: "no-cache" };

export { clientIp };

/** Account deletions asked for per user (each checks the password): a person needs one. */
export const DELETION_POLICY = "auth-delete";
const DELETION_RULE = { limit: 5, windowMs: 60_000 };
/** Data exports asked for per user: each makes every service read everything of the user. */
export const EXPORT_POLICY = "auth-export";
const EXPORT_RULE = { limit: 5, windowMs: 3_600_000 };

/** Where Traefik sends the auth service's traffic; literal, so typed clients know every path. */
export const AUTH_PREFIX = "/api/v1/auth" as const;

export function authRoutes(ctx: AuthContext) {
  const hops = ctx.env.TRUSTED_PROXY_HOPS;
  const deletionLimit = routeRateLimit(ctx.platform, DELETION_POLICY, () => DELETION_RULE, ctx.limiter);
  const exportLimit = routeRateLimit(ctx.platform, EXPORT_POLICY, () => EXPORT_RULE, ctx.limiter);
  const client = (request: Request, server: Parameters<typeof clientIp>[1]) => ({
    ip: clientIp(request, server, hops),
    userAgent: request.headers.get("user-agent") ?? undefined,
    acceptLanguage: request.headers.get("accept-language") ?? undefined,
  });
  return (
    new Elysia({ name: "auth", prefix: AUTH_PREFIX, tags: ["auth"] })
      // Before the public routes: register, login and refresh take bodies from anyone, so the
      // sanitizer covers every route here, and `protectedRoutes` below does not add a second pass.
      .use(sanitizer({ maxBodyBytes: MAX_AUTH_BODY_BYTES }))
      .get(
        "/.well-known/jwks.json",
        ({ set }) => {
          // Short enough that a key published for rotation reaches verifiers well before it signs.
          set.headers["cache-control"] = "public, max-age=300";
          // jose types every JWK member as optional; the ring publishes RSA signing keys in full.
          return ctx.ring.jwks() as Jwks;
        },
        { response: responses({ 200: Jwks }), detail: { summary: "The public keys that verify access tokens" } },
      )
      .post(
        "/register",
        async ({ body, request, server, set }) => {
          const session = await register({ ctx, input: body, client: client(request, server) });
          set.status = 201;
          Object.assign(set.headers, noStore);
          return session;
        },
        {
          body: RegisterInput,
          response: responses({ 201: Session }, ...JSON_BODY, 409, 429, 503),
          detail: { summary: "Create an account and sign in" },
        },
      )
      .post(
        "/login",
        async ({ body, request, server, set }) => {
          Object.assign(set.headers, noStore);
          return login({ ctx, input: body, client: client(request, server) });
        },
        {
          body: LoginInput,
          response: responses({ 200: Session }, ...JSON_BODY, 401, 429, 503),
          detail: { summary: "Sign in with e-mail and password" },
        },
      )
      .post(
        "/refresh",
        async ({ body, request, server, set }) => {
          Object.assign(set.headers, noStore);
          await refreshGate(ctx, client(request, server).ip);
          return refresh({ ctx, input: body });
        },
        {
          body: RefreshInput,
          response: responses({ 200: TokenPair }, ...JSON_BODY, 401, 429, 503),
          detail: { summary: "Exchange a refresh token for a new token pair (the old one is spent)" },
        },
      )
      // The links of mails are followed without a session: the token in the link is the credential.
      .post(
        "/password/forgot",
        async ({ body, request, server, set }) => {
          set.status = 202;
          return forgotPassword({ ctx, input: body, client: client(request, server) });
        },
        {
          body: ForgotPasswordInput,
          response: responses({ 202: MailAccepted }, ...JSON_BODY, 429, 503),
          detail: {
            summary: "Mail a password-reset link, if an account uses the address (the answer is the same either way)",
          },
        },
      )
      .post(
        "/password/reset",
        async ({ body, request, server, set }) => {
          await resetPassword({ ctx, input: body, client: client(request, server) });
          set.status = 204;
        },
        {
          body: ResetPasswordInput,
          response: responses({ 204: NoContent }, ...JSON_BODY, 429, 503),
          detail: { summary: "Set a new password with a reset link's token; every session ends" },
        },
      )
      .post(
        "/email/verify",
        ({ body, request, server }) => verifyEmail({ ctx, input: body, client: client(request, server) }),
        {
          body: VerifyEmailInput,
          response: responses({ 200: EmailVerified }, ...JSON_BODY, 409, 429, 503),
          detail: { summary: "Confirm the address (or a new address) with a mailed link's token" },
        },
      )
      // Public routes above, signed-in ones below; auth verifies with its own key ring.
      .use(
        protectedRoutes({
          platform: ctx.platform,
          service: "auth",
          logger: ctx.logger,
          limiter: ctx.limiter,
          verifier: ctx.verifier,
          sanitize: false,
        }),
      )
      .get("/me", ({ user }) => getMe({ ctx, user, input: undefined }), {
        response: responses({ 200: User }, ...SIGNED_IN, 404),
        detail: { summary: "The signed-in user" },
      })
      .put(
        "/me",
        ({ user, body, request, server }) => updateMe({ ctx, user, input: body, client: client(request, server) }),
        {
          body: UpdateMeInput,
          response: responses({ 200: User }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: {
            summary:
              "Change the display name, the mails' language, the password or the address (with the current password)",
          },
        },
      )
      .get(
        "/me/encryption-key",
        async ({ user, set }) => {
          Object.assign(set.headers, noStore);
          return getEncryptionKey({ ctx, user, input: undefined });
        },
        {
          response: responses({ 200: EncryptionKey }, ...SIGNED_IN, 404),
          detail: { summary: "The user's data encryption key" },
        },
      )
      .post(
        "/email/verify/resend",
        async ({ user, set }) => {
          set.status = 202;
          return resendVerification({ ctx, user, input: undefined });
        },
        {
          // No body is read, but one that is sent must still be JSON. 409: already confirmed.
          response: responses({ 202: MailAccepted }, ...SIGNED_IN, 400, 404, 409, 413, 415),
          detail: { summary: "Mail a new link confirming the account's address" },
        },
      )
      .get("/sessions", ({ user }) => listSessions({ ctx, user, input: undefined }), {
        response: responses({ 200: SessionList }, ...SIGNED_IN),
        detail: { summary: "The caller's signed-in devices (live sessions)" },
      })
      .delete(
        "/sessions/:id",
        async ({ user, params, set }) => {
          await endSession({ ctx, user, input: params });
          set.status = 204;
        },
        {
          params: SessionParams,
          response: responses({ 204: NoContent }, ...SIGNED_IN, 404, 422),
          detail: { summary: "Sign one device out: end that session, its tokens and its device sockets" },
        },
      )
      .delete(
        "/me",
        async ({ user, body, request, server, set }) => {
          const deletion = await deleteAccount({ ctx, user, input: body, client: client(request, server) });
          set.status = 202;
          return deletion;
        },
        {
          body: DeleteAccountInput,
          beforeHandle: deletionLimit,
          // 403: wrong password (as a password change); 429 also while sign-ins of the account are locked.
          response: responses({ 202: AccountDeletion }, ...SIGNED_IN, ...JSON_BODY, 403, 404),
          detail: {
            summary: "Delete the account and erase its data everywhere (asks for the password)",
            description:
              "Every session ends at once (device sockets close with 4403); chat, agent and billing erase " +
              "the user's data (the Stripe subscription is cancelled and the customer deleted), then the " +
              "account itself goes. A confirmation mail is sent. The e-mail address may register again at once.",
          },
        },
      )
      .post(
        "/me/export",
        async ({ user, set }) => {
          set.status = 202;
          return requestExport({ ctx, user, input: undefined });
        },
        {
          beforeHandle: exportLimit,
          // No body: one sent anyway is parsed by the sanitizer (400 unparsable, 413, 415).
          response: responses({ 202: DataExport }, ...SIGNED_IN, 400, 404, 413, 415),
          detail: {
            summary: "Export everything the services hold of the caller (one pending export at a time)",
            description:
              "Answers the new export, or the one already pending. Poll `GET /me/exports/:id`; once `ready`, " +
              "the archive is at `/me/exports/:id/download` for 24 hours, and a mail with that link is sent.",
          },
        },
      )
      .get("/me/exports/:id", ({ user, params }) => getExport({ ctx, user, input: params }), {
        params: ExportParams,
        response: responses({ 200: DataExport }, ...SIGNED_IN, 404, 422),
        detail: { summary: "An export's status" },
      })
      .get(
        "/me/exports/:id/download",
        async ({ user, params }) => {
          const { archive, sha256, filename } = await downloadExport({ ctx, user, input: params });
          return new Response(archive, {
            headers: {
              "content-type": "application/gzip",
              "content-disposition": `attachment; filename="${filename}"`,
              "x-content-sha256": sha256,
              ...noStore,
            },
          });
        },
        {
          params: ExportParams,
          response: responses({ 200: z.unknown() }, ...SIGNED_IN, 404, 409, 410, 422),
          detail: {
            summary: "Download a ready export: a .tar.gz with manifest.json and one JSON file per service",
            description:
              "409 `export_not_ready` while pending, 409 `export_failed`, 410 `export_expired` past its 24 hours.",
            responses: {
              200: {
                description: "The archive",
                content: { "application/gzip": { schema: { type: "string", format: "binary" } } },
              },
            },
          },
        },
      )
      .post(
        "/logout",
        async ({ user, body, set }) => {
          await logout({ ctx, user, input: body });
          set.status = 204;
        },
        {
          body: LogoutInput,
          response: responses({ 204: NoContent }, ...SIGNED_IN, ...JSON_BODY),
          detail: { summary: "End this session, or every session with `all: true`" },
        },
      )
  );
}
