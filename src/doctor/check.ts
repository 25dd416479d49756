/** How one doctor check came out: `fail` means castra cannot work as it stands; `warn`, it works worse. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of `castra doctor`. */
export interface DoctorCheck {
  /** A short stable name: "qemu-img", "accelerator", "cache-dir"… (JSON consumers key on it). */
  name: string;
  status: CheckStatus;
  /** What was found, in a few words. */
  summary: string;
  /** For a warning or failure: what to do about it. */
  fix?: string;
}

export const ok = (name: string, summary: string): DoctorCheck => ({ name, status: "ok", summary });

export const warn = (name: string, summary: string, fix: string): DoctorCheck => ({
  name,
  status: "warn",
  summary,
  fix,
});

export const fail = (name: string, summary: string, fix: string): DoctorCheck => ({
  name,
  status: "fail",
  summary,
  fix,
});
