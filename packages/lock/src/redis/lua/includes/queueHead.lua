-- Drops expired (or lease-less) entries at the head of a fair queue, so a dead waiter never
-- blocks it; returns the live head and its lease deadline, or nil. handoffKey (optional): the
-- hash of hand-off requests (includes/handOff.lua), cleared with the entries dropped.
local function queueHead(queueKey, leasesKey, now, handoffKey)
  while true do
    local head = redis.call('LINDEX', queueKey, 0)
    if not head then return nil, nil end
    local deadline = tonumber(redis.call('ZSCORE', leasesKey, head))
    if deadline and deadline > now then return head, deadline end
    redis.call('LPOP', queueKey)
    redis.call('ZREM', leasesKey, head)
    if handoffKey then redis.call('HDEL', handoffKey, head) end
  end
end
