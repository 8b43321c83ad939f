// Renders the console's app icons (web/public/icons/*.png) from their SVG sources with the
// Chromium the browser tests use, so that no image tool is needed. Run once after changing an
// SVG and commit the PNGs: `cd tests/browser && node render-icons.mjs`.
//   icon-<n>.png           web/public/favicon.svg (rounded, transparent corners): manifest "any"
//   icon-maskable-512.png  web/icons/maskable.svg (full bleed; the glyph inside the safe zone)
//   apple-touch-icon.png   web/icons/maskable.svg at 180 px (iOS rounds the corners itself)
//   badge-96.png           web/icons/badge.svg (white glyph on transparent: Android's status bar)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './browser.mjs';

const web = join(import.meta.dirname, '..', '..', 'web');
const out = join(web, 'public', 'icons');
const icons = [
  ['public/favicon.svg', 192, 'icon-192.png'],
  ['public/favicon.svg', 512, 'icon-512.png'],
  ['icons/maskable.svg', 512, 'icon-maskable-512.png'],
  ['icons/maskable.svg', 180, 'apple-touch-icon.png'],
  ['icons/badge.svg', 96, 'badge-96.png'],
];

const browser = await launch();
try {
  for (const [source, size, name] of icons) {
    const page = await browser.newPage({ viewport: { width: size, height: size } });
    const svg = readFileSync(join(web, source), 'utf8')
      .replace('<svg ', `<svg width="${size}" height="${size}" `);
    await page.setContent(`<!doctype html><style>html,body{margin:0;background:transparent}svg{display:block}</style>${svg}`);
    await page.screenshot({ path: join(out, name), omitBackground: true });
    await page.close();
    console.log(`${name} (${size}x${size}) from ${source}`);
  }
} finally {
  await browser.close();
}
