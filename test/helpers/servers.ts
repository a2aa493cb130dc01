// Test-side access to the throwaway database servers (src/lab/servers.ts) and to the ones `npm test` starts.
export * from '../../src/lab/servers.ts';

export type ServiceEnvName = 'DATABASE_URL_PG' | 'DATABASE_URL_MYSQL' | 'REDIS_URL';

/** The URL of a server started by `npm test` (scripts/services.sh up); throws a clear error when it is not set. */
export function envUrl(name: ServiceEnvName): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run the tests with \`npm test\` (which starts the servers) or eval "$(scripts/services.sh up)"`,
    );
  }
  return value;
}
