/** What a failed interop test prints, since its namespaces and files are gone afterwards. */
import { readFileSync } from 'node:fs';

/**
 * Call from afterEach with the log files of the peers involved: when the test
 * failed, prints the end of each so the CI output alone explains the failure.
 */
export function dumpLogsOnFailure(ctx: Mocha.Context, logs: Record<string, string | undefined>, lines = 80): void {
  if (ctx.currentTest?.state !== 'failed') return;
  for (const [name, path] of Object.entries(logs)) {
    if (!path) continue;
    let text: string;
    try { text = readFileSync(path, 'utf8'); } catch { continue; }
    const tail = text.split('\n').slice(-lines).join('\n');
    console.log(`\n----- last ${lines} lines of ${name} (${path}) -----\n${tail}\n----- end of ${name} -----`);
  }
}
