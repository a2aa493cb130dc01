--[[
  Acquires a lock and issues its fencing token in the same atomic step.
  KEYS[1] lock key: owner id, PX ttl
  KEYS[2] fence counter of the key: INCR; expires ARGV[7] ms after, never before the epoch (includes/expireFence.lua)
  KEYS[3] epoch key (expires on its own, see installEpoch-1); missing means it expired or Redis lost its state
  KEYS[4] waiter queue: list of owner ids in arrival order
  KEYS[5] waiter leases: zset owner id -> lease deadline (server ms)
  KEYS[6] hand-off requests: hash owner id -> ttl ms (includes/wakeNext.lua)
  ARGV[1] owner id
  ARGV[2] ttl ms
  ARGV[3] "1" for a fair caller (only the queue's head may take a free lock), "0" otherwise
  ARGV[4] waiter lease ms
  ARGV[5] "1" if an earlier attempt of this acquisition may have queued the caller, "0" otherwise
  ARGV[6] "1": failover guard (Sentinel, Cluster): an epoch installed on another master counts as missing
  ARGV[7] fence counter TTL ms; "0": none
  ARGV[8] "1": a caller that listens for wake-ups: if queued, it asks to be handed the lock (for
          ARGV[2] ms) when it reaches the head and the lock is released; "0": woken only
  Every caller that finds the lock held joins the queue, so a release wakes only the head.
  A non-fair caller may take a free lock ahead of the head (barging); a fair one may not.
  Returns:
    {0, epoch, counter, ttl}  acquired; fence = epoch << 40 | counter. The same owner retrying
                              (an ambiguous reply) gets its own fence back.
    {-1, pttl, now}           held by another owner (caller queued); now = server time, ms
    {-3}                      epoch missing (or, guarded, from another master): install a new epoch, then retry
    {-4, ms, now}             fair caller: free, but a live waiter heads the queue; ms = its lease left
    {-5}                      fence counter exhausted for this epoch
]]
--@include nowMs
--@include queueHead
--@include enqueueWaiter
--@include currentEpoch
--@include nextFence
local owner = ARGV[1]
local ttl = tonumber(ARGV[2])
local fair = ARGV[3] == '1'
local waiterTtl = tonumber(ARGV[4])
local queued = ARGV[5] == '1'
local handoffTtl = nil
if ARGV[8] == '1' then handoffTtl = ARGV[2] end

local epoch = currentEpoch(KEYS[3], ARGV[6] == '1')
if not epoch then return {-3} end

local function issue()
  local counter = nextFence(KEYS[2], KEYS[3], tonumber(ARGV[7]))
  if not counter then
    redis.call('DEL', KEYS[1])
    return {-5}
  end
  return {0, epoch, tostring(counter), ttl}
end

-- Fast path: a non-fair first attempt may barge, so it needs no look at the queue.
if not fair and not queued and redis.call('SET', KEYS[1], owner, 'NX', 'PX', ttl) then
  return issue()
end

local holder = redis.call('GET', KEYS[1])
if holder == owner then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {0, epoch, redis.call('GET', KEYS[2]) or '0', ttl}
end

if holder then
  local now = nowMs()
  enqueueWaiter(KEYS[4], KEYS[5], owner, now, waiterTtl, KEYS[6], handoffTtl)
  return {-1, redis.call('PTTL', KEYS[1]), now}
end

-- Free. An empty queue means nobody is owed the lock: take it at once, without queue writes.
if redis.call('EXISTS', KEYS[4]) == 1 then
  local now = nowMs()
  local head, deadline = queueHead(KEYS[4], KEYS[5], now, KEYS[6])
  if head == owner then
    redis.call('LPOP', KEYS[4])
    redis.call('ZREM', KEYS[5], owner)
    redis.call('HDEL', KEYS[6], owner)
  elseif head then
    if fair then
      enqueueWaiter(KEYS[4], KEYS[5], owner, now, waiterTtl, KEYS[6], handoffTtl)
      return {-4, math.max(1, deadline - now), now}
    end
    if redis.call('ZREM', KEYS[5], owner) == 1 then
      redis.call('LREM', KEYS[4], 0, owner)
      redis.call('HDEL', KEYS[6], owner)
    end
  end
end

redis.call('SET', KEYS[1], owner, 'PX', ttl)
return issue()
