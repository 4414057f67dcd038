import { importCommand } from "../import/command";
import {
  ensureDatabasePassword,
  ensureKeyFiles,
  ensurePluginPseudonymKey,
  pluginPseudonymKeyPath,
} from "../shared/auth/keygen";
import type { Migration } from "../shared/db";
import type { ServiceName } from "../shared/env";
import { exitOnStartupFailure, healthcheck, runServices, type ServiceFactory } from "../shared/run";

/**
 * `keys [dir]` (default infra/keys): writes the RS256 key pair, the master key, the empty file of
 * extra public keys Compose mounts, the database password and the chat service's plugin pseudonym
 * key, never overwriting one. `bun run keys` and every executable's `keys` subcommand, so a host
 * without Bun can make them.
 */
export async function keysCommand(args: string[]): Promise<number> {
  const dir = args.find((arg) => !arg.startsWith("--")) ?? "infra/keys";
  const { created, paths } = await ensureKeyFiles(dir);
  const password = ensureDatabasePassword(dir);
  if (password) created.push(password);
  const pseudonymKey = ensurePluginPseudonymKey(dir);
  if (pseudonymKey) created.push(pseudonymKey);
  console.log(created.length > 0 ? `created ${created.join(", ")}` : `keys already present in ${dir}`);
  console.log(
    `private: ${paths.privateKey}\npublic:  ${paths.publicKey}\nextra:   ${paths.extraPublicKeys}\nmaster:  ${paths.masterKey}\npseudonym: ${pluginPseudonymKeyPath(dir)}`,
  );
  return 0;
}

/**
 * The entry of one service's executable (scripts/build.ts compiles one per service from
 * src/entries/<service>.ts, so it carries that service's code only). SERVICE_NAME may be unset or
 * name this service; anything else is refused with one line.
 */
export async function runEntry(
  name: ServiceName,
  factory: ServiceFactory,
  argv: string[],
  source: NodeJS.ProcessEnv,
  /** The service's own migrations: `import` applies these, and needs the other schemas to exist. */
  migrations: Migration[],
) {
  const command = argv[2];
  if (command === "healthcheck") process.exit(await healthcheck(source));
  if (command === "keys") process.exit(await keysCommand(argv.slice(3)));
  // The monolith's data (docs/migration.md); any executable can run it, whichever service it is.
  if (command === "import") process.exit(await importCommand(argv.slice(3), source, { [name]: migrations }));
  const requested = source.SERVICE_NAME;
  if (requested && requested !== name) {
    console.error(`invalid configuration: SERVICE_NAME: this executable runs ${name} only (got '${requested}')`);
    process.exit(1);
  }
  await runServices({ [name]: factory }, { ...source, SERVICE_NAME: name }).catch(exitOnStartupFailure);
}
