--[[
  Removes a waiter that gave up (timeout, abort) and, if the lock is free, hands it to or wakes
  the next head. With ARGV[6] "1", a waiter the lock was handed to (includes/wakeNext.lua) while
  it was giving up gives it back here, so a hand-off nobody takes never waits out its ttl.
  Redlock's nodes pass "0": they never hand off, and a node's late grant to a caller that holds
  the lock on a majority is part of its holding (freeing it early would let that node's next
  waiter win it there and leave the queue, out of order with the other nodes).
  KEYS[1] lock key
  KEYS[2] fair queue list
  KEYS[3] fair queue leases zset
  KEYS[4] hand-off requests: hash owner id -> ttl ms
  KEYS[5] fence counter of the key
  KEYS[6] epoch key
  ARGV[1] owner id
  ARGV[2] the key's wake-up channel
  ARGV[3] prefix of the providers' own wake-up channels (includes/wakeNext.lua); '' for none
  ARGV[4] "1": failover guard (see acquireLock-6)
  ARGV[5] fence counter TTL ms; "0": none
  ARGV[6] "1": give back a lock held under the owner id; "0": only leave the queue
  Returns: 0 removed or absent, 1 a lock handed to the waiter given back
]]
--@include nowMs
--@include queueHead
--@include currentEpoch
--@include nextFence
--@include wakeNext
local k = { lock = KEYS[1], queue = KEYS[2], leases = KEYS[3], handoff = KEYS[4], fence = KEYS[5], epoch = KEYS[6] }
redis.call('LREM', k.queue, 0, ARGV[1])
redis.call('HDEL', k.handoff, ARGV[1])
local queued = redis.call('ZREM', k.leases, ARGV[1]) == 1
local holder = redis.call('GET', k.lock)
if holder == ARGV[1] and ARGV[6] == '1' then
  redis.call('DEL', k.lock)
  wakeNext(k, ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5]))
  return 1
end
if queued and not holder then
  wakeNext(k, ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5]))
end
return 0
