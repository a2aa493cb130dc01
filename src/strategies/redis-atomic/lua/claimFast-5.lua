--[[
  `redis-atomic` claims in `fast` mode (201 after this call): what claimUnits-4 does, plus, for
  each claim that took a unit, its Idempotency-Key reserved in Redis and its record appended to
  this instance's write-behind stream, in the same atomic call. The instance writes the claims to
  SQL from memory and deletes their entries once committed; should it die first, another instance
  replays the stream before its lease is reclaimed. An acknowledged claim is lost only when Redis
  loses its entry (FLUSHALL, a restart losing the last second of AOF `everysec`, a failover to a
  lagging replica) and its instance dies before committing it.
  KEYS[1] marker: present while the campaign's Redis state was built from SQL
  KEYS[2] users: hash user id -> claims counted
  KEYS[3] lease: hash {id, fence, left} of this instance's block
  KEYS[4] leases: set of the campaign's block keys (every instance's)
  KEYS[5] stream: this instance's write-behind stream (entries {l: lease id, f: fence, d: record})
  ARGV[1] per-user limit
  ARGV[2] the lease's fence (the redis_leases row's)
  ARGV[3] the lease's id
  ARGV[4] prefix of the campaign's Idempotency-Key reservations (within the campaign's hash tag)
  ARGV[5] how long a reservation lives (ms; the instance deletes it once SQL has the key)
  ARGV[6..] four per claim: user id, Idempotency-Key ('' for none), the reservation's value, the
          record to append
  Returns {-3} when the marker is missing, else one entry per claim, then the units left in this
  instance's block:
    {0, entryId}                 taken from this instance's block
    {1, leaseId, fence, entryId} taken from another instance's block
    {4}                          the Idempotency-Key is reserved by a claim not yet in SQL
    {-1}                         the user is at the limit (by Redis's count)
    {-2}                         no block has a unit: refill this one from SQL
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local limit = tonumber(ARGV[1])
local own = redis.call('HMGET', KEYS[3], 'fence', 'left')
local ownLeft = 0
if own[1] == ARGV[2] and own[2] then ownLeft = tonumber(own[2]) end
local taken = 0
local others = nil
local out = {}
for i = 6, #ARGV, 4 do
  local user, key, value, record = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local count = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  if key ~= '' and redis.call('EXISTS', ARGV[4] .. key) == 1 then
    out[#out + 1] = {4}
  elseif count >= limit then
    out[#out + 1] = {-1}
  else
    local lease, fence = nil, nil
    if ownLeft > 0 then
      ownLeft = ownLeft - 1
      taken = taken + 1
      lease, fence = ARGV[3], ARGV[2]
    else
      if others == nil then others = redis.call('SMEMBERS', KEYS[4]) end
      for _, k in ipairs(others) do
        if k ~= KEYS[3] then
          local other = redis.call('HMGET', k, 'id', 'fence', 'left')
          if other[1] and other[3] and tonumber(other[3]) > 0 then
            redis.call('HINCRBY', k, 'left', -1)
            lease, fence = other[1], other[2]
            break
          end
        end
      end
    end
    if lease then
      redis.call('HINCRBY', KEYS[2], user, 1)
      if key ~= '' then redis.call('SET', ARGV[4] .. key, value, 'PX', ARGV[5]) end
      local id = redis.call('XADD', KEYS[5], '*', 'l', lease, 'f', fence, 'd', record)
      if lease == ARGV[3] then out[#out + 1] = {0, id} else out[#out + 1] = {1, lease, fence, id} end
    else
      out[#out + 1] = {-2}
    end
  end
end
if taken > 0 then redis.call('HINCRBY', KEYS[3], 'left', -taken) end
out[#out + 1] = ownLeft
return out
