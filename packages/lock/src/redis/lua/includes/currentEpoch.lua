-- The fencing epoch stored at an epoch key: "<epoch>" or "<epoch>@<master replid>". With the
-- failover guard, an epoch stamped by another master (or not stamped) counts as missing: after a
-- failover or a restart the fence counters may have lost their last increments (asynchronous
-- replication), so only a fresh epoch from the durable anchor keeps fences strictly increasing.
-- master_replid changes on every promotion and every restart, never otherwise.
local function masterId()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end

local function currentEpoch(key, guard)
  local v = redis.call('GET', key)
  if not v then return nil end
  local at = string.find(v, '@', 1, true)
  if not guard then
    if at then return string.sub(v, 1, at - 1) end
    return v
  end
  if not at or string.sub(v, at + 1) ~= masterId() then return nil end
  return string.sub(v, 1, at - 1)
end
