--[[
  `redis-atomic` claims, several in one call (the claims of one campaign that arrived in the same
  turn of an instance's event loop): for each user in order, checks the user's count against the
  campaign's per-user limit, takes a unit from this instance's leased block (or, when it is empty,
  from another instance's block, so no unit sits idle in one instance while another answers
  SOLD_OUT) and counts the claim for the user. Blocks only hold units SQL granted (redis_leases),
  and every claim is written to SQL against the lease its unit came from: Redis never issues more
  than SQL granted. One call is atomic; the same user twice in a call is counted in order.
  KEYS[1] marker: present while the campaign's Redis state was built from SQL; missing after a
          restart without persistence, a FLUSHALL or a failover to an empty replica
  KEYS[2] users: hash user id -> claims counted
  KEYS[3] lease: hash {id, fence, left} of this instance's block
  KEYS[4] leases: set of the campaign's block keys (every instance's)
  ARGV[1] per-user limit
  ARGV[2] the lease's fence (the redis_leases row's)
  ARGV[3..] user ids
  Returns {-3} when the marker is missing (rebuild the campaign's state from SQL first), else one
  entry per user, then the units left in this instance's block (a number: refill it early when low):
    {0}                   taken from this instance's block
    {1, leaseId, fence}   taken from another instance's block (written against that lease)
    {-1}                  the user is at the limit (by Redis's count)
    {-2}                  no block has a unit: refill this one from SQL
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local limit = tonumber(ARGV[1])
local own = redis.call('HMGET', KEYS[3], 'fence', 'left')
local ownLeft = 0
if own[1] == ARGV[2] and own[2] then ownLeft = tonumber(own[2]) end
local taken = 0
local others = nil
local out = {}
for i = 3, #ARGV do
  local user = ARGV[i]
  local count = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  if count >= limit then
    out[#out + 1] = {-1}
  elseif ownLeft > 0 then
    ownLeft = ownLeft - 1
    taken = taken + 1
    redis.call('HINCRBY', KEYS[2], user, 1)
    out[#out + 1] = {0}
  else
    if others == nil then others = redis.call('SMEMBERS', KEYS[4]) end
    local got = nil
    for _, key in ipairs(others) do
      if key ~= KEYS[3] then
        local other = redis.call('HMGET', key, 'id', 'fence', 'left')
        if other[1] and other[3] and tonumber(other[3]) > 0 then
          redis.call('HINCRBY', key, 'left', -1)
          got = {1, other[1], other[2]}
          break
        end
      end
    end
    if got then
      redis.call('HINCRBY', KEYS[2], user, 1)
      out[#out + 1] = got
    else
      out[#out + 1] = {-2}
    end
  end
end
if taken > 0 then redis.call('HINCRBY', KEYS[3], 'left', -taken) end
out[#out + 1] = ownLeft
return out
