-- Bounded fencing state: after an increment, a fence counter expires fenceTtl ms later, but never
-- before the epoch it was issued under (the epoch key's remaining TTL); under an epoch without a
-- TTL (or with fenceTtl 0) it keeps none. So a counter that expired restarts at 1 only under a
-- newer epoch, installed from the anchor after the old one expired: the key's fences keep
-- strictly increasing, and an idle key leaves nothing behind.
local function expireFence(fenceKey, epochKey, fenceTtl)
  local left = redis.call('PTTL', epochKey)
  if fenceTtl <= 0 or left < 0 then
    redis.call('PERSIST', fenceKey)
  else
    redis.call('PEXPIRE', fenceKey, math.max(fenceTtl, left + 1))
  end
end
