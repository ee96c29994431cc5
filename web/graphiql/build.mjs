// Bundles the page into server/api/graphiql/static/ (content-hashed names, minified, no source
// maps) and writes server/api/graphiql/manifest.json, which names them for the Python template.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageDir = path.resolve(here, '../../server/api/graphiql');
const staticDir = path.join(packageDir, 'static');

await rm(staticDir, { recursive: true, force: true }); // no stale hashed files left behind
await mkdir(staticDir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { graphiql: 'src/main.jsx' },
  outdir: staticDir,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  target: ['chrome109', 'edge109', 'firefox115', 'safari15.6'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  charset: 'utf8',
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

const relative = (file) => path.relative(staticDir, path.resolve(here, file)).split(path.sep).join('/');
const [entry] = Object.entries(result.metafile.outputs).filter(([, output]) => output.entryPoint);
const manifest = { script: relative(entry[0]), stylesheet: relative(entry[1].cssBundle) };
await writeFile(path.join(packageDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`built ${manifest.script} and ${manifest.stylesheet}`);
