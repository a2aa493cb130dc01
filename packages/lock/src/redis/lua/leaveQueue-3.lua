--[[
  Removes a fair waiter that gave up (timeout, abort) and, if the lock is free, wakes the next head.
  KEYS[1] lock key
  KEYS[2] fair queue list
  KEYS[3] fair queue leases zset
  ARGV[1] owner id
  ARGV[2] the key's wake-up channel
  ARGV[3] prefix of the providers' own wake-up channels (includes/wakeNext.lua); '' for none
  Returns: 0 removed or absent
]]
--@include nowMs
--@include queueHead
--@include wakeNext
redis.call('LREM', KEYS[2], 0, ARGV[1])
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  wakeNext(KEYS[2], KEYS[3], ARGV[2], ARGV[3])
end
return 0
