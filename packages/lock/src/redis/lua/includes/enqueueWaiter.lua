-- Appends owner to the fair queue if absent and (re)sets its lease; queue keys expire on their
-- own once every waiter is gone. handoffKey and handoffTtl (optional): the waiter asks to be
-- handed the lock directly on release, for handoffTtl ms (includes/handOff.lua).
local function enqueueWaiter(queueKey, leasesKey, owner, now, waiterTtl, handoffKey, handoffTtl)
  if not redis.call('ZSCORE', leasesKey, owner) then
    redis.call('RPUSH', queueKey, owner)
  end
  redis.call('ZADD', leasesKey, now + waiterTtl, owner)
  local keep = waiterTtl * 2
  if redis.call('PTTL', queueKey) < keep then redis.call('PEXPIRE', queueKey, keep) end
  if redis.call('PTTL', leasesKey) < keep then redis.call('PEXPIRE', leasesKey, keep) end
  if handoffKey and handoffTtl then
    redis.call('HSET', handoffKey, owner, handoffTtl)
    if redis.call('PTTL', handoffKey) < keep then redis.call('PEXPIRE', handoffKey, keep) end
  end
end
