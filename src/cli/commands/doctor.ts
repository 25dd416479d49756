import type { Project } from "../../config/model.js";
import type { DoctorCheck } from "../../doctor/check.js";
import { diagnoseHost } from "../../doctor/diagnose.js";
import { CastraError, ExitCode } from "../../errors.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import type { DoctorOptions } from "./specs.js";

/**
 * `castra doctor [--json]`: one line per check of this host (and the project's paths), with a fix under
 * each problem. Exit 0 when no check failed (warnings allowed), 1 otherwise.
 */
export async function runDoctor(opts: DoctorOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const { project, problem } = await projectOrProblem(ctx);
  const checks = await diagnoseHost({ env: io.env, project });
  if (problem) checks.push(problem);
  const healthy = checks.every((c) => c.status !== "fail");
  if (opts.json) io.print(JSON.stringify({ ok: healthy, checks }, null, 2));
  else render(checks, io);
  return healthy ? ExitCode.ok : ExitCode.checkFailed;
}

/** A castra.toml that does not load is one more problem to list, not the end of the diagnosis. */
async function projectOrProblem(ctx: CommandContext): Promise<{ project?: Project; problem?: DoctorCheck }> {
  try {
    return { project: await resolveProject(ctx) };
  } catch (err) {
    if (!(err instanceof CastraError)) throw err;
    const fix = err.hint ?? "fix castra.toml, then run `castra doctor` again";
    return { problem: { name: "project", status: "fail", summary: err.headline, fix } };
  }
}

function render(checks: DoctorCheck[], io: IO): void {
  const c = io.out.color;
  const mark = { ok: c.green("✓"), warn: c.yellow("!"), fail: c.red("✗") };
  const width = Math.max(...checks.map((check) => check.name.length));
  for (const check of checks) {
    io.print(`${mark[check.status]} ${check.name.padEnd(width)}  ${check.summary}`);
    if (check.fix) io.print(`  ${" ".repeat(width)}  ${c.dim(`fix: ${check.fix}`)}`);
  }
  const count = (status: DoctorCheck["status"], noun: string) => {
    const n = checks.filter((check) => check.status === status).length;
    return `${n === 0 ? "no" : n} ${noun}${n === 1 ? "" : "s"}`;
  };
  const failed = checks.some((check) => check.status === "fail");
  io.print("");
  io.print(
    `${count("fail", "problem")}, ${count("warn", "warning")}: ${failed ? "fix the problems above, then run `castra doctor` again" : "castra can run VMs here"}`,
  );
}
