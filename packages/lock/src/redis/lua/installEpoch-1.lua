--[[
  Installs a fencing epoch only if it is higher than the one present (or none is).
  KEYS[1] epoch key
  ARGV[1] epoch, decimal string (may exceed 2^53: compared as digit strings)
  Returns: {1, epoch} installed, {0, current} a higher or equal epoch was already there
]]
local current = redis.call('GET', KEYS[1])
local new = ARGV[1]
if current and (#current > #new or (#current == #new and current >= new)) then
  return {0, current}
end
redis.call('SET', KEYS[1], new)
return {1, new}
