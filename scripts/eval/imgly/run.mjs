// IMG.LY's own pipeline (@imgly/background-removal-node, its "medium" ISNet,
// its own resampling and ONNX Runtime): node run.mjs OUT_DIR IMAGE...
// writes OUT_DIR/<stem>.png, an RGBA cut-out, one image at a time.
import { removeBackground } from "@imgly/background-removal-node";
import { writeFile } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [out, ...images] = process.argv.slice(2);
for (const image of images) {
  const cutout = await removeBackground(pathToFileURL(resolve(image)).href, {
    model: "medium",
    output: { format: "image/png" },
  });
  const name = basename(image, extname(image)) + ".png";
  await writeFile(join(out, name), Buffer.from(await cutout.arrayBuffer()));
}
