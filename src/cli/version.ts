declare const __CASTRA_VERSION__: string | undefined;

/** Semver from package.json, plus the git short sha when built from a checkout (set by the bundler). */
export const VERSION: string = typeof __CASTRA_VERSION__ === "string" ? __CASTRA_VERSION__ : "0.1.0-dev";
