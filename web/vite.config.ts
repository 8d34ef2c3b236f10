import { defineConfig } from 'vite';

// Everything is bundled (no CDN): the page is served by the stack's nginx from $STACK_DIR/web.
export default defineConfig({
  base: '/',
  build: { target: 'es2020', chunkSizeWarningLimit: 1200, sourcemap: false },
  test: { include: ['tests/**/*.test.ts'], environment: 'node' },
} as never);
