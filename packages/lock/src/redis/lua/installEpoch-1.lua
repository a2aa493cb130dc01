--[[
  Installs a fencing epoch only if it is higher than the one present (or none is).
  KEYS[1] epoch key
  ARGV[1] epoch, decimal string (may exceed 2^53: compared as digit strings)
  ARGV[2] "1": failover guard: stamp the epoch with this master's replication id, and treat an
          epoch stamped by another master as stale (see includes/currentEpoch.lua)
  ARGV[3] TTL ms of an installed epoch; "0": none. An epoch that expired is missing: the next
          acquisition installs a newer one from the anchor (bounded fencing state, expireFence)
  Returns: {1, epoch} installed
           {0, current} a higher or equal epoch, valid on this master, was already there
           {-3, current} an epoch from another master, not lower than ARGV[1], is there: the caller
                         must fetch a newer epoch from its anchor and try again
]]
--@include currentEpoch
local guard = ARGV[2] == '1'
local new = ARGV[1]
local raw = redis.call('GET', KEYS[1])
if raw then
  local at = string.find(raw, '@', 1, true)
  local current = raw
  if at then current = string.sub(raw, 1, at - 1) end
  if #current > #new or (#current == #new and current >= new) then
    if not guard or currentEpoch(KEYS[1], true) then return {0, current} end
    return {-3, current}
  end
end
local value = new
if guard then value = new .. '@' .. masterId() end
local epochTtl = tonumber(ARGV[3])
if epochTtl > 0 then
  redis.call('SET', KEYS[1], value, 'PX', epochTtl)
else
  redis.call('SET', KEYS[1], value)
end
return {1, new}
