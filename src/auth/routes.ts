import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import { clientIp } from "../shared/client-ip";
import { rateLimitByTier } from "../shared/rate-limit";
import { sanitizer } from "../shared/sanitizer";
import { type AuthContext, refreshGate } from "./context";
import { login } from "./login";
import { logout } from "./logout";
import { LoginInput, LogoutInput, RefreshInput, RegisterInput, UpdateMeInput } from "./model";
import { getEncryptionKey, getMe, updateMe } from "./profile";
import { refresh } from "./refresh";
import { register } from "./register";

/** Small bodies only: the largest is a profile update. */
const MAX_AUTH_BODY_BYTES = 4096;

/** Responses carrying tokens or keys must never be stored by a cache. */
const noStore = { "cache-control": "no-store", pragma: "no-cache" };

export { clientIp };

export function authRoutes(ctx: AuthContext, prefix: string) {
  const hops = ctx.env.TRUSTED_PROXY_HOPS;
  return new Elysia({ name: "auth", prefix })
    .use(sanitizer({ maxBodyBytes: MAX_AUTH_BODY_BYTES }))
    .get("/.well-known/jwks.json", ({ set }) => {
      // Short enough that a key published for rotation reaches verifiers well before it signs.
      set.headers["cache-control"] = "public, max-age=300";
      return ctx.ring.jwks();
    })
    .post(
      "/register",
      async ({ body, request, server, set }) => {
        const session = await register({ ctx, input: body, ip: clientIp(request, server, hops) });
        set.status = 201;
        Object.assign(set.headers, noStore);
        return session;
      },
      { body: RegisterInput },
    )
    .post(
      "/login",
      async ({ body, request, server, set }) => {
        Object.assign(set.headers, noStore);
        return login({ ctx, input: body, ip: clientIp(request, server, hops) });
      },
      { body: LoginInput },
    )
    .post(
      "/refresh",
      async ({ body, request, server, set }) => {
        Object.assign(set.headers, noStore);
        await refreshGate(ctx, clientIp(request, server, hops));
        return refresh({ ctx, input: body });
      },
      { body: RefreshInput },
    )
    .use(authGuard(ctx.verifier, ctx.logger))
    .use(rateLimitByTier(ctx.platform, "auth", { limiter: ctx.limiter }))
    .get("/me", ({ user }) => getMe({ ctx, user }))
    .put(
      "/me",
      ({ user, body, request, server }) => updateMe({ ctx, user, input: body, ip: clientIp(request, server, hops) }),
      { body: UpdateMeInput },
    )
    .get("/me/encryption-key", async ({ user, set }) => {
      Object.assign(set.headers, noStore);
      return getEncryptionKey({ ctx, user });
    })
    .post(
      "/logout",
      async ({ user, body, set }) => {
        await logout({ ctx, user, input: body });
        set.status = 204;
      },
      { body: LogoutInput },
    );
}
