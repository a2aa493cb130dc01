--[[
  `fast` mode: sets an instance's block from its books, only while the campaign's state is built
  (the marker). While the marker is missing (a FLUSHALL or restart not yet rebuilt), claims other
  instances answered from this block may still be on their way to SQL, and the books do not
  count them yet: a block set now would hand their units out again.
  KEYS[1] marker
  KEYS[2] lease: hash {id, fence, left}
  KEYS[3] leases: set of the campaign's block keys
  ARGV[1] lease id, ARGV[2] fence, ARGV[3] units left
  Returns 1 when set, 0 when the marker is missing (nothing set).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'fence', ARGV[2], 'left', ARGV[3])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
