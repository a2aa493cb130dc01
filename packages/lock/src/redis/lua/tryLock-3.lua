--[[
  The uncontended fast path: a non-fair caller's first attempt. Takes a free lock and issues its
  fencing token in one atomic step, touching only the three keys that needs; never looks at or
  joins the waiter queue (a non-fair first attempt may barge anyway).
  KEYS[1] lock key: owner id, PX ttl
  KEYS[2] fence counter of the key: INCR; expires ARGV[4] ms after, never before the epoch (includes/expireFence.lua)
  KEYS[3] epoch key (expires on its own, see installEpoch-1); missing means it expired or Redis lost its state
  ARGV[1] owner id (fresh: no earlier attempt of this acquisition reached Redis)
  ARGV[2] ttl ms
  ARGV[3] "1": failover guard (Sentinel, Cluster): an epoch installed on another master counts as missing
  ARGV[4] fence counter TTL ms; "0": none
  On failure the caller subscribes to the wake-up channel and retries with acquireLock-6, which
  joins the queue; a release between the two is caught by that retry.
  Returns:
    {0, epoch, counter}  acquired; fence = epoch << 40 | counter
    {-1, pttl}           held by someone (caller not queued)
    {-3}                 epoch missing (or, guarded, from another master): install a new epoch, then retry
    {-5}                 fence counter exhausted for this epoch
]]
--@include currentEpoch
--@include nextFence
local epoch = currentEpoch(KEYS[3], ARGV[3] == '1')
if not epoch then return {-3} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {-1, redis.call('PTTL', KEYS[1])}
end
local counter = nextFence(KEYS[2], KEYS[3], tonumber(ARGV[4]))
if not counter then
  redis.call('DEL', KEYS[1])
  return {-5}
end
return {0, epoch, counter}
