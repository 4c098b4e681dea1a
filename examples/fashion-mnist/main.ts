// npm run demo: see demo.ts (the program) and README.md (what it shows). This file only runs it.
import { runDemo } from './demo.js';

process.exitCode = runDemo(process.argv.slice(2));
