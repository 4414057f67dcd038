// Runs before any test file: a missing PostgreSQL or Redis fails the run at once, never skips.
import { assertInfrastructure } from "../src/shared/testing/infra";

await assertInfrastructure();
