import type { Scenario } from "./harness.js";

export const securityScenarios: Scenario[] = [];
