import type { Env } from "../shared/env";
import { ServiceError } from "../shared/errors";
import { argon2Params, passwordHashFormat, verifyLegacyHash } from "./legacy-hashes";

/** The argon2 version Bun.password writes (0x13), and its parallelism, which it does not let us set. */
const ARGON2_CURRENT_VERSION = 19;
const ARGON2_CURRENT_PARALLELISM = 1;

/**
 * argon2id through Bun.password with a cap on hashes in flight: each takes PASSWORD_HASH_MEMORY_KIB,
 * so a burst of logins queues (bounded) instead of exhausting memory, and overflows with a 503.
 * It also verifies the monolith's formats (`legacy-hashes.ts`), under the same cap.
 */
export class PasswordHasher {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly options: Bun.Password.Argon2Algorithm;
  /** Verified against when the e-mail is unknown, so both paths cost one argon2 verification. */
  private readonly dummy: Promise<string>;

  constructor(private readonly env: Env) {
    this.options = {
      algorithm: "argon2id",
      memoryCost: env.PASSWORD_HASH_MEMORY_KIB,
      timeCost: env.PASSWORD_HASH_TIME_COST,
    };
    this.dummy = Bun.password.hash(crypto.randomUUID(), this.options);
  }

  hash(password: string): Promise<string> {
    return this.limited(() => Bun.password.hash(password, this.options));
  }

  /**
   * Verifies against `hash` in any format auth knows, or against a dummy hash when there is none
   * (unknown e-mail) or it is of no known format: the same cost as a real check, and `false`.
   */
  async verify(password: string, hash: string | undefined): Promise<boolean> {
    const known = hash !== undefined && passwordHashFormat(hash) !== undefined;
    const target = known ? hash : await this.dummy;
    const ok = await this.limited(() => verifyLegacyHash(password, target));
    return ok && known;
  }

  /**
   * Whether a hash that has just verified should be replaced: anything but argon2id with exactly
   * the configured memory and passes (an imported bcrypt or pbkdf2 hash, argon2i, older costs).
   */
  needsRehash(hash: string): boolean {
    const params = argon2Params(hash);
    return !(
      params?.variant === "argon2id" &&
      params.version === ARGON2_CURRENT_VERSION &&
      params.memoryKib === this.env.PASSWORD_HASH_MEMORY_KIB &&
      params.timeCost === this.env.PASSWORD_HASH_TIME_COST &&
      params.parallelism === ARGON2_CURRENT_PARALLELISM
    );
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.env.PASSWORD_HASH_CONCURRENCY) {
      if (this.waiting.length >= this.env.PASSWORD_HASH_QUEUE) {
        throw new ServiceError("auth_busy", 503, "too many sign-ins at once, try again shortly", {
          "retry-after": "1",
        });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active += 1;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

const COMMON = new Set([
  "password",
  "password1",
  "password123",
  "passw0rd",
  "123456789",
  "1234567890",
  "qwertyuiop",
  "iloveyou",
  "letmein123",
  "welcome123",
  "adminadmin",
  "abc123456",
]);

/** Minimum strength: 10+ characters, not a well-known password, not the e-mail, more than 4 distinct characters. */
export function passwordProblem(password: string, email: string): string | undefined {
  if (password.length < 10) return "password must be at least 10 characters";
  if (password.length > 256) return "password must be at most 256 characters";
  const lower = password.toLowerCase();
  if (COMMON.has(lower)) return "password is too common";
  if (lower === email.toLowerCase() || lower === email.split("@")[0]?.toLowerCase()) {
    return "password must not be the e-mail address";
  }
  if (new Set(password).size < 5) return "password needs more distinct characters";
  return undefined;
}
