--@include expireFence
-- The key's next fence counter (INCR, its TTL kept by includes/expireFence.lua), or nil when the
-- counter reached 2^40 under this epoch (exhausted: the caller issues nothing).
local function nextFence(fenceKey, epochKey, fenceTtl)
  local counter = redis.call('INCR', fenceKey)
  if counter >= 1099511627776 then return nil end
  expireFence(fenceKey, epochKey, fenceTtl)
  return counter
end
