-- Wakes waiters after the lock became free: publishes "<head owner> <head lease ms>" (only the
-- head retries, the rest bound their wait by that lease), or "*" if only expired entries were
-- queued. No queue, no waiter: nothing to publish (every waiter joins the queue when it fails).
local function wakeNext(queueKey, leasesKey, channel)
  if redis.call('EXISTS', queueKey) == 0 then return end
  local now = nowMs()
  local head, deadline = queueHead(queueKey, leasesKey, now)
  local payload = '*'
  if head then payload = head .. ' ' .. tostring(math.max(1, deadline - now)) end
  redis.call('PUBLISH', channel, payload)
end
