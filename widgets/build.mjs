// Bundle widgets/src into one ESM + one CSS in sapari_nb/static/ (shipped in the wheel).
// `node build.mjs` = minified release build; `node build.mjs --dev` = sourcemaps + watch.
// src/index.js imports sapari.css, so esbuild writes sapari.css next to sapari.js.
import * as esbuild from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "sapari_nb", "static");
const dev = process.argv.includes("--dev");

const options = {
  entryPoints: [join(here, "src", "index.js")],
  outfile: join(outdir, "sapari.js"),
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "none",
  logLevel: "info",
};

if (dev) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching ${join(here, "src")} -> ${outdir}`);
} else {
  await esbuild.build(options);
}
