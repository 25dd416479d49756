import { displayPath } from "../../config/load.js";
import type { NarrowedMode } from "../../host/private-files.js";

/** How many narrowed entries the notice names before it only counts the rest. */
const NAMED = 6;

/**
 * One line for the modes castra narrowed under `.castra/`:
 * "Narrowed permissions under .castra/ to owner-only: .castra/ 755→700, logs/devbox.log 644→600".
 */
export function narrowedNotice(stateDir: string, narrowed: NarrowedMode[], cwd: string): string {
  const items = narrowed
    .slice(0, NAMED)
    .map((n) => `${n.path || "."} ${n.from.toString(8)}→${n.to.toString(8)}`);
  const more = narrowed.length > NAMED ? ` and ${narrowed.length - NAMED} more` : "";
  return `Narrowed permissions under ${displayPath(stateDir, cwd)}/ to owner-only: ${items.join(", ")}${more}`;
}
