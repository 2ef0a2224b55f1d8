import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

let root: Logger | undefined;

/** Parses LOG_LEVEL; unknown values fall back to info (config validation reports them first). */
export function levelFrom(value: string | undefined): LevelWithSilent {
  const v = (value ?? '').trim().toLowerCase();
  return (LEVELS as readonly string[]).includes(v) ? (v as LevelWithSilent) : 'info';
}

/**
 * The process-wide root logger: JSON lines on stderr, so stdout stays free for CLI output. The daemon logs to stdout
 * instead (SWARMNET_LOG_STDOUT=1, set by its entry point): dockerd records a managed plugin's stderr at level=error.
 */
export function rootLogger(): Logger {
  root ??= pino(
    {
      level: levelFrom(process.env.LOG_LEVEL),
      base: { pid: process.pid },
      // Keys that may carry secrets are never printed, whatever a caller passes.
      redact: { paths: ['password', '*.password', 'etcdPassword', '*.etcdPassword', 'key', '*.key'], censor: '[redacted]' },
    },
    pino.destination({ fd: process.env.SWARMNET_LOG_STDOUT === '1' ? 1 : 2, sync: true }),
  );
  return root;
}

/** A child logger for one component, e.g. `logger('ipam')`. */
export function logger(component: string): Logger {
  return rootLogger().child({ component });
}

export function setLogLevel(level: LevelWithSilent): void {
  rootLogger().level = level;
}
