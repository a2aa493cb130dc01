// The `allot/lock` entry point: the lock library, @allot/lock, with its prom-client binding
// (allot depends on prom-client anyway). Install @allot/lock alone for the locks without allot's
// SQL, HTTP and PGlite dependencies.
export * from '@allot/lock';
export { registerLockMetrics } from '@allot/lock/prometheus';
