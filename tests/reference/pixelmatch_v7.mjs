// Runs the real mapbox pixelmatch for tests/reference/test_pixelmatch_mapbox.py.
//
//   node pixelmatch_v7.mjs <pixelmatch's index.js> < jobs.json
//
// jobs.json: [{a, b, width, height, options, out}, ...]; `a` and `b` are files of raw RGBA
// bytes (row-major, 4 bytes a pixel), `options` pixelmatch's options object, `out` (or null)
// the file to write the diff image to, raw RGBA. Each pair is compared twice, with and without
// an output buffer (as pixelmatch's own test does); prints the counts as one JSON array.
import fs from 'node:fs';
import {pathToFileURL} from 'node:url';

const {default: pixelmatch} = await import(pathToFileURL(process.argv[2]).href);
const jobs = JSON.parse(fs.readFileSync(0, 'utf8'));

// a fresh Uint8Array each: offset 0 in its own buffer, as pixelmatch's Uint32Array view needs
const read = path => new Uint8Array(fs.readFileSync(path));

const counts = jobs.map(({a, b, width, height, options, out}) => {
    const img1 = read(a);
    const img2 = read(b);
    const output = out ? new Uint8Array(width * height * 4) : null; // zeroed, like a new PNG
    const count = pixelmatch(img1, img2, output, width, height, options);
    const again = pixelmatch(img1, img2, null, width, height, options);
    if (count !== again) throw new Error(`count ${count} with an output, ${again} without`);
    if (out) fs.writeFileSync(out, output);
    return count;
});
process.stdout.write(JSON.stringify(counts));
