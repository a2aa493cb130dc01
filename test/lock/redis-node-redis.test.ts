// Runs the lock contract on Redis through the node-redis adapter.
import { lockContract } from './contract.ts';
import { redisHarness } from './redis-harness.ts';

lockContract('redis (node-redis)', redisHarness('node-redis'));
