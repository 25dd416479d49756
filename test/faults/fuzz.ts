import type { Scenario } from "./harness.js";

export const fuzzScenarios: Scenario[] = [];
