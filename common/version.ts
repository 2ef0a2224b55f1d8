import { createRequire } from 'node:module';

/** The package's version (the plugin image carries package.json beside dist/). */
export const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
