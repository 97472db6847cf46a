/** dist/browser/, where `npm run build:web` puts the site. */
export const WEB_DIR: string;
/** Builds mmemu.js (wasm embedded), app.js and index.html into `outDir`; resolves to it. */
export function buildWeb(outDir?: string): Promise<string>;
