import { ConfigError, loadConfig, type AppConfig } from '@aigov/config';
import { connectNats, type NatsConnection } from '@aigov/contracts';

/** Where a script writes: a line to stdout or to stderr (tests pass their own). */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const stdio: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * The configuration and a NATS connection with the apps' own settings (credentials, TLS), for a
 * command-line script; or the exit code after saying on stderr why there is none (bad
 * configuration, NATS switched off: `disabled` says what the script cannot do then, NATS
 * unreachable).
 */
export async function scriptNats(
  /** undefined: the process's environment, read by libs/config. */
  env: Record<string, string | undefined> | undefined,
  name: string,
  disabled: string,
  io: Io,
): Promise<{ config: AppConfig; nc: NatsConnection } | number> {
  let config: AppConfig;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 1;
    }
    throw err;
  }
  if (!config.natsEnabled) {
    io.err(`NATS_ENABLED=false: ${disabled}`);
    return 1;
  }
  try {
    return { config, nc: await connectNats(config.nats, name) };
  } catch (err) {
    io.err((err as Error).message);
    return 1;
  }
}
