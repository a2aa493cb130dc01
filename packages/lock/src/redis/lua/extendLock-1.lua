--[[
  Extends a lock if, and only if, the caller still owns it.
  KEYS[1] lock key
  ARGV[1] owner id
  ARGV[2] ttl ms
  Returns: 0 extended, -2 held by another owner, -6 not held
]]
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 0
end
if holder then return -2 end
return -6
