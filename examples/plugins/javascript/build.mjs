// Builds plugin.js into a WebAssembly component for gitauto's `plugin` world.
//   node build.mjs [WIT_DIR] [OUTPUT]   (defaults: ../../../wit, push-summary.wasm)
// `jco componentize` does the same in principle; calling componentize-js directly is
// what works reliably today.
import { componentize } from '@bytecodealliance/componentize-js';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const witPath = resolve(process.argv[2] ?? join(here, '../../../wit'));
const output = resolve(process.argv[3] ?? join(here, 'push-summary.wasm'));
const { component } = await componentize({
  sourcePath: join(here, 'plugin.js'),
  witPath,
  worldName: 'plugin',
  // `fetch` is `wasi:http`, which gitauto serves under the plugin's grant; the rest it
  // grants nothing through: leave them out.
  disableFeatures: ['stdio', 'random', 'fetch-event'],
});
await writeFile(output, component);
console.log(`wrote ${output} (${component.length} bytes)`);
