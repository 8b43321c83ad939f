// The console is served by the server itself: every asset same-origin, hashed names under
// /assets/ (cached for a year), no inline scripts or styles (the CSP forbids them).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    // CMake passes the build tree's directory; a plain `npx vite build` writes web/dist.
    outDir: process.env.PA_WEB_OUT_DIR ?? 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Small files are not inlined as data: URLs into the CSS/JS.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
