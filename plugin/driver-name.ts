/**
 * Whether a network's driver (as Docker records it: the name the user gave) is this plugin: `swarmnet`, with any tag
 * (`swarmnet:latest` — swarm needs the tag) and any registry path (`registry.example/ops/swarmnet:1.2`).
 */
export function isSwarmnetDriver(driver: string): boolean {
  return /^(?:[\w.-]+(?::\d+)?\/)*swarmnet(?::[\w][\w.-]{0,127})?$/.test(driver);
}
