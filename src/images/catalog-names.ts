import * as z from "zod/mini";

/** Names the pipeline itself uses inside an image directory. */
const RESERVED_NAMES = new Set(["manifest.json"]);

/** Why `name` is not a plain file name that stays inside the image directory, or undefined when it is. */
export function fileNameProblem(name: string): string | undefined {
  if (name === "" || name === "." || name === "..") return "must be a file name, not empty, `.` or `..`";
  if (name.includes("/") || name.includes("\\")) return "must be a plain file name, without `/` or `\\`";
  if (name.includes("..")) return "must not contain `..`";
  if (name.startsWith(".")) return "must not start with a dot";
  if (name.length > 200) return "must be at most 200 characters long";
  if ([...name].some((c) => c.charCodeAt(0) < 0x20)) return "must not contain control characters";
  if (RESERVED_NAMES.has(name)) return `must not be ${name}, which castra writes itself`;
  if (/\.(partial|tmp)$/.test(name))
    return "must not end in .partial or .tmp, which castra uses for downloads";
  return undefined;
}

/** A string that `problem` has nothing to say about. */
export function checkedString(problem: (text: string) => string | undefined) {
  return z.string().check(
    z.superRefine((text, ctx) => {
      const message = problem(text);
      if (message) ctx.addIssue({ code: "custom", message });
    }),
  );
}

/** A catalog file name: plain, inside the image directory, not one castra uses itself. */
export const plainFileName = checkedString(fileNameProblem);
