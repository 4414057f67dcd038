// The routes each service really serves, read from its module built on a test context's platform:
// what compose.yaml's, the Kubernetes manifests' and the migration profile's routers are checked against.
import { serviceFactories } from "../../src/services";
import { SERVICE_NAMES, type ServiceName } from "../../src/shared/env";
import type { TestContext } from "../../src/shared/testing";
import type { Route } from "./compose-check";

export async function servedRoutes(ctx: TestContext): Promise<Map<ServiceName, Route[]>> {
  const served = new Map<ServiceName, Route[]>();
  for (const name of SERVICE_NAMES) {
    const module = await serviceFactories[name](await ctx.platform({ service: name }));
    served.set(
      name,
      module.plugin.routes.map((route: Route) => ({ method: route.method, path: route.path })),
    );
  }
  return served;
}
