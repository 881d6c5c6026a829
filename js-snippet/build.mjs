// Builds dist/t.js (minified IIFE for the script tag) and dist/touchstream.mjs (ES module).
// `node build.mjs --check` fails when the committed files differ from a fresh build.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';

const common = { bundle: true, minify: true, target: ['es2020'], write: false, legalComments: 'none' };
const outputs = {
  'dist/t.js': (await build({ ...common, entryPoints: ['src/iife.js'], format: 'iife' })).outputFiles[0].text,
  'dist/touchstream.mjs': (await build({ ...common, entryPoints: ['src/index.js'], format: 'esm' })).outputFiles[0].text,
};
const check = process.argv.includes('--check');
let stale = [];
for (const [path, text] of Object.entries(outputs)) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {}
  if (current === text) continue;
  if (check) stale.push(path);
  else writeFileSync(path, text);
}
if (stale.length) {
  console.error(`stale build output: ${stale.join(', ')}; run \`npm run build\` in js-snippet/ and commit`);
  process.exit(1);
}
