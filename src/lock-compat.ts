// The `allot/lock/compat` entry point: redis-semaphore's Mutex shape on allot's locks
// (@allot/lock/compat); docs/migrating.md tells what differs.
export * from '@allot/lock/compat';
