// A TCP fault proxy for the race lab: sits between the app and a server (Postgres, MariaDB,
// Redis) and adds latency, resets, blackholes or refusals on command. Loopback only.
import net from 'node:net';

export interface FaultProxyStats {
  /** client connections currently open through the proxy */
  open: number;
  /** client connections accepted since start (refused ones included) */
  accepted: number;
  /** bytes forwarded client → target */
  bytesToTarget: number;
  /** bytes forwarded target → client */
  bytesToClient: number;
  /** bytes dropped by the blackhole (either direction) */
  bytesDropped: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** The given server URL with its host:port replaced by the proxy's (postgres://, mysql://, redis://…). */
  url(rewrite: string): string;
  /** Delay every chunk by ms in both directions; order per direction is kept. 0 turns it off. */
  setLatency(ms: number): void;
  /** Reset (TCP RST) every open connection, on both sides. */
  resetAll(): void;
  /**
   * On: connections stay open but nothing passes in either direction (data, FIN and RST are
   * swallowed); new connections are accepted and hang without reaching the target. Off: traffic
   * flows again, but the bytes dropped meanwhile are gone for good, so connections that lived
   * through the blackhole are corrupt: call resetAll() after turning it off.
   */
  setBlackhole(on: boolean): void;
  /** On: new connections are reset as soon as they are accepted. */
  setRefuse(on: boolean): void;
  stats(): FaultProxyStats;
  /** Stops listening and destroys every connection; resolves once all are closed. */
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** loopback only; default 127.0.0.1 */
  listenHost?: string;
}

interface State {
  latencyMs: number;
  blackhole: boolean;
  refuse: boolean;
  stats: FaultProxyStats;
}

function loopbackHost(host: string | undefined): string {
  const h = host ?? '127.0.0.1';
  if (h === 'localhost') return '127.0.0.1';
  if ((net.isIPv4(h) && h.startsWith('127.')) || h === '::1') return h;
  throw new Error(`fault proxy: listenHost must be a loopback address (127.x.x.x or ::1), got "${h}"`);
}

function reset(socket: net.Socket | null): void {
  if (!socket || socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** One direction of a connection: a queue that delays chunks and keeps their order. */
class Pipe {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | null = null;
  private lastDue = 0;
  private srcEnded = false;
  private waitingDrain = false;

  constructor(
    private readonly state: State,
    private readonly src: net.Socket,
    private readonly dst: () => net.Socket | null,
    private readonly count: (n: number) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.state.blackhole) {
      this.state.stats.bytesDropped += chunk.length;
      return;
    }
    if (this.state.latencyMs <= 0 && this.queue.length === 0) {
      this.deliver(chunk);
      return;
    }
    // Latency may drop between chunks: never schedule a chunk before the one ahead of it.
    const due = Math.max(performance.now() + this.state.latencyMs, this.lastDue);
    this.lastDue = due;
    this.queue.push({ due, chunk });
    this.schedule();
  }

  end(): void {
    this.srcEnded = true;
    if (this.queue.length === 0) this.finish();
  }

  clear(): void {
    this.queue.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.flush(), Math.max(0, Math.ceil(this.queue[0]!.due - performance.now())));
  }

  private flush(): void {
    this.timer = null;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) this.deliver(this.queue.shift()!.chunk);
    if (this.queue.length > 0) this.schedule();
    else if (this.srcEnded) this.finish();
  }

  private deliver(chunk: Buffer): void {
    const dst = this.dst();
    // Chunks in flight when the blackhole opened are lost in it too.
    if (this.state.blackhole || !dst || dst.destroyed) {
      if (this.state.blackhole) this.state.stats.bytesDropped += chunk.length;
      return;
    }
    this.count(chunk.length);
    if (!dst.write(chunk) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.src.pause();
      dst.once('drain', () => {
        this.waitingDrain = false;
        this.src.resume();
      });
    }
  }

  private finish(): void {
    const dst = this.dst();
    if (this.state.blackhole || !dst || dst.destroyed) return;
    dst.end();
  }
}

class Connection {
  upstream: net.Socket | null = null;
  private readonly up: Pipe;
  private readonly down: Pipe;

  constructor(
    private readonly state: State,
    readonly client: net.Socket,
    target: { host: string; port: number },
    private readonly onGone: (c: Connection) => void,
  ) {
    const stats = state.stats;
    this.up = new Pipe(state, client, () => this.upstream, (n) => (stats.bytesToTarget += n));
    client.on('error', () => undefined);
    client.on('data', (chunk: Buffer) => this.up.push(chunk));
    client.on('end', () => {
      if (!state.blackhole) this.up.end();
    });
    client.on('close', (hadError) => this.closed(client, this.upstream, hadError));

    // A blackholed network carries no SYN either: this connection never reaches the target.
    if (state.blackhole) {
      this.down = new Pipe(state, client, () => client, (n) => (stats.bytesToClient += n));
      return;
    }
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    this.upstream = upstream;
    this.down = new Pipe(state, upstream, () => client, (n) => (stats.bytesToClient += n));
    upstream.on('error', () => undefined);
    upstream.on('data', (chunk: Buffer) => this.down.push(chunk));
    upstream.on('end', () => {
      if (!state.blackhole) this.down.end();
    });
    upstream.on('close', (hadError) => this.closed(upstream, client, hadError));
  }

  private closed(side: net.Socket, other: net.Socket | null, hadError: boolean): void {
    if (this.client.destroyed && (!this.upstream || this.upstream.destroyed)) {
      this.up.clear();
      this.down.clear();
      this.onGone(this);
    }
    if (!other || other.destroyed || this.state.blackhole) return;
    // A reset (or a refused connect) upstream becomes a reset for the client, and vice versa;
    // a clean close after FIN needs nothing, the 'end' already travelled.
    if (hadError || side.readableEnded === false) reset(other);
  }

  reset(): void {
    this.up.clear();
    this.down.clear();
    reset(this.client);
    reset(this.upstream);
  }

  destroy(): void {
    this.up.clear();
    this.down.clear();
    this.client.destroy();
    this.upstream?.destroy();
  }
}

/** Starts a proxy on a free loopback port in front of target. */
export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const host = loopbackHost(opts.listenHost);
  const target = { ...opts.target };
  const state: State = {
    latencyMs: 0,
    blackhole: false,
    refuse: false,
    stats: { open: 0, accepted: 0, bytesToTarget: 0, bytesToClient: 0, bytesDropped: 0 },
  };
  const connections = new Set<Connection>();
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    state.stats.accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (state.refuse) {
      client.on('error', () => undefined);
      reset(client);
      return;
    }
    const conn = new Connection(state, client, target, (c) => connections.delete(c));
    connections.add(conn);
  });
  server.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no TCP address');
  const port = address.port;
  const hostPort = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  let closing: Promise<void> | null = null;

  return {
    host,
    port,
    url(rewrite: string): string {
      const m = /^([a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?)(\[[^\]]*\]|[^/?#:]*)(:\d*)?/i.exec(rewrite);
      if (!m) throw new Error(`fault proxy: cannot find host:port in "${rewrite}"`);
      return m[1] + hostPort + rewrite.slice(m[0].length);
    },
    setLatency(ms: number): void {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`fault proxy: latency must be a finite number >= 0, got ${ms}`);
      state.latencyMs = ms;
    },
    resetAll(): void {
      for (const c of [...connections]) c.reset();
      for (const s of sockets) reset(s);
    },
    setBlackhole(on: boolean): void {
      state.blackhole = on;
    },
    setRefuse(on: boolean): void {
      state.refuse = on;
    },
    stats(): FaultProxyStats {
      return { ...state.stats, open: connections.size };
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of [...connections]) c.destroy();
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
