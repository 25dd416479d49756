import type { CompleteOptions } from "../commands/specs.js";
import type { CommandContext } from "../context.js";
import { type Candidate, completeWords } from "./candidates.js";
import { namesFor, projectFlagsIn } from "./names.js";

/**
 * `castra __complete SHELL -- WORDS…`, run by the completion scripts at every Tab: the candidates for the
 * last word, one per line in the shell's format, or `:files`. Never an error: a prompt is no place for one.
 */
export async function runComplete(opts: CompleteOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const words = opts.words ?? [];
  const names = namesFor({ cwd: io.cwd, env: io.env, ...projectFlagsIn(words) });
  const completion = await completeWords(words.length > 0 ? words : [""], names);
  if (completion.kind === "files") io.out.write(":files\n");
  else io.out.write(completion.words.map((c) => `${formatted(opts.shell, c)}\n`).join(""));
  return 0;
}

/** bash wants the bare word; zsh's _describe `word:description`; fish `word<Tab>description`. */
function formatted(shell: string, candidate: Candidate): string {
  const { value, description } = candidate;
  if (!description || shell === "bash") return value;
  if (shell === "zsh") return `${value.replaceAll(":", "\\:")}:${description}`;
  return `${value}\t${description}`;
}
