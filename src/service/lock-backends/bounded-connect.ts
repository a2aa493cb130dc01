// Connects an ioredis client (or Cluster) within a bound: against unreachable sentinels or cluster
// nodes ioredis retries for ever and connect() never settles. The error names the last cause seen.
export interface Connectable {
  connect(): Promise<unknown>;
  disconnect(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export async function connectWithin(client: Connectable, timeoutMs: number): Promise<void> {
  let last: Error | undefined;
  client.on('error', (e) => (last = e));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    client.disconnect();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
