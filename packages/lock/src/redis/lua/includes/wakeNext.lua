-- Called once the lock is free (released, or given back by a waiter that left the queue): hands
-- the lock to the queue's live head, or wakes it.
--
-- Hand-off: when the head asked for it (its attempt stored a ttl in the hand-off hash; only a
-- waiter that listens for wake-ups does) and a fence can be issued (an epoch is current, the
-- counter not exhausted), the head becomes the owner here, in this atomic step, with the next
-- fence of the key's counter, exactly as its own acquisition would have made it. The wake-up
-- message tells it so, "<head owner> <ttl ms> <epoch> <counter> <server ms>": it needs no attempt
-- of its own (a round trip less per handover) and dates its lease from the server time of that
-- step. A head that gave up in the meantime gives the lock back when it leaves the queue
-- (leaveQueue-6); a head whose process died holds it until its ttl, like a holder that died.
--
-- Otherwise the payload is "<head owner> <head lease ms>" (only the head retries, the rest bound
-- their wait by that lease), or "*" if only expired entries were queued. No queue, no waiter:
-- nothing to publish (every waiter joins the queue when it fails).
--
-- A head whose owner id a provider generated ("<16 hex provider id>:<seq>") is told on its
-- provider's own channel (ownerChannels .. provider id), so one release costs one delivery, not
-- one per subscribed connection. The key's channel gets the message instead when nobody received
-- it there (the head's process is gone, is reconnecting, subscribes per key as Redlock's nodes do,
-- or, in a cluster, listens on another node: PUBLISH counts this node's receivers only), when the
-- head is a caller-chosen identifier, and for "*": so the other waiters still learn the ttl or the
-- lease that bounds their wait, and a waiter listening on the key's channel alone is never missed.
local function notifyHead(head, payload, channel, ownerChannels)
  if ownerChannels and ownerChannels ~= '' then
    local provider = string.match(head, '^(' .. string.rep('%x', 16) .. '):%w+$')
    if provider and redis.call('PUBLISH', ownerChannels .. provider, payload) > 0 then return end
  end
  redis.call('PUBLISH', channel, payload)
end

local function wakeNext(k, channel, ownerChannels, guard, fenceTtl)
  if redis.call('EXISTS', k.queue) == 0 then return end
  local now = nowMs()
  local head, deadline = queueHead(k.queue, k.leases, now, k.handoff)
  if not head then
    redis.call('PUBLISH', channel, '*')
    return
  end
  local ttl = redis.call('HGET', k.handoff, head)
  if ttl then
    local epoch = currentEpoch(k.epoch, guard)
    if epoch then
      local counter = nextFence(k.fence, k.epoch, fenceTtl)
      if counter then
        redis.call('SET', k.lock, head, 'PX', ttl)
        redis.call('LPOP', k.queue)
        redis.call('ZREM', k.leases, head)
        redis.call('HDEL', k.handoff, head)
        notifyHead(head, head .. ' ' .. ttl .. ' ' .. epoch .. ' ' .. counter .. ' ' .. now, channel, ownerChannels)
        return
      end
    end
  end
  notifyHead(head, head .. ' ' .. tostring(math.max(1, deadline - now)), channel, ownerChannels)
end
