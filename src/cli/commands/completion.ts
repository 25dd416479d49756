import { COMPLETION_SCRIPTS } from "../completion/scripts.js";
import type { CommandContext } from "../context.js";
import type { CompletionOptions } from "./specs.js";

/** `castra completion bash|zsh|fish`: the shell's completion script, on stdout for `source` or a file. */
export async function runCompletion(opts: CompletionOptions, ctx: CommandContext): Promise<number> {
  ctx.io.out.write(COMPLETION_SCRIPTS[opts.shell]);
  return 0;
}
