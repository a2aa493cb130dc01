--[[
  Redlock fence write-back: raises a node's fence for a key to at least the fence the quorum
  issued (epoch << 40 | counter), so any later majority, which shares a node with this one,
  issues a higher fence. Only ever raises; a higher node epoch already outranks the fence.
  Keeps the fencing state bounded like the acquisition scripts do: a raised epoch expires
  epochTtl ms later (as installEpoch's), a raised counter never before its epoch (expireFence).
  KEYS[1] fence counter of the key
  KEYS[2] epoch key of the node: "<epoch>" or, with the failover guard, "<epoch>@<master replid>"
  ARGV[1] epoch, decimal string (may exceed 2^53: compared as digit strings)
  ARGV[2] counter (< 2^40)
  ARGV[3] TTL ms of a raised epoch; "0": none
  ARGV[4] fence counter TTL ms; "0": none
  Returns:
    1   raised (the epoch, the counter or both)
    0   already at or above the fence
    -3  epoch missing: the node lost its state; its next acquisition installs a fresh epoch
]]
--@include expireFence
local raw = redis.call('GET', KEYS[2])
if not raw then return -3 end
-- A stamp ("@<replid>") is kept as it is: a stale one stays stale, so the guard still refreshes the epoch.
local at = string.find(raw, '@', 1, true)
local current, stamp = raw, ''
if at then current, stamp = string.sub(raw, 1, at - 1), string.sub(raw, at) end
local epoch = ARGV[1]
local counter = tonumber(ARGV[2])
local epochTtl = tonumber(ARGV[3])
local fenceTtl = tonumber(ARGV[4])
if #epoch > #current or (#epoch == #current and epoch > current) then
  -- Raising the node's epoch raises every key's fence on it: harmless, fences only grow. Every
  -- counter incremented under the new epoch is tied to its TTL by expireFence.
  if epochTtl > 0 then
    redis.call('SET', KEYS[2], epoch .. stamp, 'PX', epochTtl)
  else
    redis.call('SET', KEYS[2], epoch .. stamp)
  end
  redis.call('SET', KEYS[1], counter)
  expireFence(KEYS[1], KEYS[2], fenceTtl)
  return 1
end
if epoch ~= current then return 0 end
local have = tonumber(redis.call('GET', KEYS[1]) or '0')
if have >= counter then return 0 end
redis.call('SET', KEYS[1], counter)
expireFence(KEYS[1], KEYS[2], fenceTtl)
return 1
