import { Elysia } from "elysia";
import { clientIp } from "../shared/client-ip";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { sanitizer } from "../shared/sanitizer";
import { type AuthContext, refreshGate } from "./context";
import { login } from "./login";
import { logout } from "./logout";
import {
  EncryptionKey,
  Jwks,
  LoginInput,
  LogoutInput,
  RefreshInput,
  RegisterInput,
  Session,
  TokenPair,
  UpdateMeInput,
  User,
} from "./model";
import { getEncryptionKey, getMe, updateMe } from "./profile";
import { refresh } from "./refresh";
import { register } from "./register";

/** Small bodies only: the largest is a profile update. */
const MAX_AUTH_BODY_BYTES = 4096;

/** Responses carrying tokens or keys must never be stored by a cache. */
const noStore = { "cache-control": "no-store", pragma: "no-cache" };

export { clientIp };

/** Where Traefik sends the auth service's traffic; literal, so typed clients know every path. */
export const AUTH_PREFIX = "/api/v1/auth" as const;

export function authRoutes(ctx: AuthContext) {
  const hops = ctx.env.TRUSTED_PROXY_HOPS;
  const client = (request: Request, server: Parameters<typeof clientIp>[1]) => ({
    ip: clientIp(request, server, hops),
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
          response: responses({ 200: User }, ...SIGNED_IN, ...JSON_BODY, 403, 404),
          detail: { summary: "Change the display name or the password (with the current one)" },
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
