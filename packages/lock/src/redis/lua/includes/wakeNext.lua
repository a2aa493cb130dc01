-- Wakes waiters after the lock became free. The payload is "<head owner> <head lease ms>" (only
-- the head retries, the rest bound their wait by that lease), or "*" if only expired entries were
-- queued. No queue, no waiter: nothing to publish (every waiter joins the queue when it fails).
-- A head whose owner id a provider generated ("<16 hex provider id>:<seq>") is woken on its
-- provider's own channel (ownerChannels .. provider id), so one release costs one delivery, not
-- one per subscribed connection. The key's channel gets the message instead when nobody received
-- it there (the head's process is gone, is reconnecting, subscribes per key as Redlock's nodes do,
-- or, in a cluster, listens on another node: PUBLISH counts this node's receivers only), when the
-- head is a caller-chosen identifier, and for "*": so the other waiters still learn the lease that
-- bounds their wait, and a waiter listening on the key's channel alone is never missed.
local function wakeNext(queueKey, leasesKey, channel, ownerChannels)
  if redis.call('EXISTS', queueKey) == 0 then return end
  local now = nowMs()
  local head, deadline = queueHead(queueKey, leasesKey, now)
  if not head then
    redis.call('PUBLISH', channel, '*')
    return
  end
  local payload = head .. ' ' .. tostring(math.max(1, deadline - now))
  if ownerChannels and ownerChannels ~= '' then
    local provider = string.match(head, '^(' .. string.rep('%x', 16) .. '):%w+$')
    if provider and redis.call('PUBLISH', ownerChannels .. provider, payload) > 0 then return end
  end
  redis.call('PUBLISH', channel, payload)
end
