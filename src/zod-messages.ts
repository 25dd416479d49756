import { en } from "zod/locales";
import { config } from "zod/mini";

// zod/mini is a twentieth of zod's size (start-up time on `up` and `images`) but has no messages of its own.
config(en());
