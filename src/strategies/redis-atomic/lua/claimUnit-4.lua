--[[
  One `redis-atomic` claim: checks the user's count against the campaign's per-user limit, takes a
  unit from this instance's leased block (or, when it is empty, from another instance's block, so
  no unit sits idle in one instance while another answers SOLD_OUT) and counts the claim for the
  user, in one atomic step. Blocks only hold units SQL granted (redis_leases), and every claim is
  written to SQL against the lease its unit came from: Redis never issues more than SQL granted.
  KEYS[1] marker: present while the campaign's Redis state was built from SQL; missing after a
          restart without persistence, a FLUSHALL or a failover to an empty replica
  KEYS[2] users: hash user id -> claims counted
  KEYS[3] lease: hash {id, fence, left} of this instance's block
  KEYS[4] leases: set of the campaign's block keys (every instance's)
  ARGV[1] user id
  ARGV[2] per-user limit
  ARGV[3] the lease's fence (the redis_leases row's)
  Returns:
    {0, left}             taken from this instance's block
    {1, leaseId, fence}   taken from another instance's block (written against that lease)
    {-1, count}           the user is at the limit (by Redis's count)
    {-2}                  no block has a unit: refill this one from SQL
    {-3}                  the marker is missing: rebuild the campaign's state from SQL first
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local count = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if count >= tonumber(ARGV[2]) then return {-1, count} end
local lease = redis.call('HMGET', KEYS[3], 'fence', 'left')
if lease[1] == ARGV[3] and lease[2] and tonumber(lease[2]) > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  return {0, redis.call('HINCRBY', KEYS[3], 'left', -1)}
end
for _, key in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if key ~= KEYS[3] then
    local other = redis.call('HMGET', key, 'id', 'fence', 'left')
    if other[1] and other[3] and tonumber(other[3]) > 0 then
      redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
      redis.call('HINCRBY', key, 'left', -1)
      return {1, other[1], other[2]}
    end
  end
end
return {-2}
