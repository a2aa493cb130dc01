--[[
  Renews a fair waiter's queue lease while it waits.
  KEYS[1] fair queue list
  KEYS[2] fair queue leases zset
  ARGV[1] owner id
  ARGV[2] waiter lease ms
  Returns: 0 renewed, -6 not queued (pruned: the next attempt re-enqueues at the tail)
]]
--@include nowMs
--@include enqueueWaiter
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return -6 end
enqueueWaiter(KEYS[1], KEYS[2], ARGV[1], nowMs(), tonumber(ARGV[2]))
return 0
