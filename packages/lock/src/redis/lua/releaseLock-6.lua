--[[
  Releases a lock owned by the caller and hands it to, or wakes, the queue's head (includes/wakeNext.lua).
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
  Returns: 0 released, -2 held by another owner, -6 not held
]]
--@include nowMs
--@include queueHead
--@include currentEpoch
--@include nextFence
--@include wakeNext
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  if holder then return -2 end
  return -6
end
redis.call('DEL', KEYS[1])
wakeNext({ lock = KEYS[1], queue = KEYS[2], leases = KEYS[3], handoff = KEYS[4], fence = KEYS[5], epoch = KEYS[6] }, ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5]))
return 0
