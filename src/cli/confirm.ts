import { createInterface } from "node:readline/promises";
import { UsageError } from "../errors.js";
import type { IO } from "./io.js";

/**
 * Asks before deleting: `--yes` skips the question, a missing terminal refuses (exit 64) with the command
 * to run instead, and anything but y/yes (Ctrl-C included) means no.
 */
export async function confirmDeletion(
  io: IO,
  options: { yes?: boolean; question: string; command: string; what: string },
): Promise<boolean> {
  if (options.yes) return true;
  if (!io.err.isTTY || !process.stdin.isTTY) {
    throw new UsageError(`${options.command} asks before deleting, and there is no terminal to ask on`, {
      hint: `run \`${options.command} --yes\` to remove the ${options.what} listed above`,
    });
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  rl.on("SIGINT", () => rl.close());
  try {
    const answer = await rl.question(options.question).catch(() => "");
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
