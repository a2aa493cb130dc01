--[[
  Releases a lock owned by the caller and wakes the queue's head (includes/wakeNext.lua).
  KEYS[1] lock key
  KEYS[2] fair queue list
  KEYS[3] fair queue leases zset
  ARGV[1] owner id
  ARGV[2] the key's wake-up channel
  ARGV[3] prefix of the providers' own wake-up channels (includes/wakeNext.lua); '' for none
  Returns: 0 released, -2 held by another owner, -6 not held
]]
--@include nowMs
--@include queueHead
--@include wakeNext
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  if holder then return -2 end
  return -6
end
redis.call('DEL', KEYS[1])
wakeNext(KEYS[2], KEYS[3], ARGV[2], ARGV[3])
return 0
