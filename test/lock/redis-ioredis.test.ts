// Runs the lock contract on Redis through the ioredis adapter.
import { lockContract } from './contract.ts';
import { redisHarness } from './redis-harness.ts';

lockContract('redis (ioredis)', redisHarness('ioredis'));
