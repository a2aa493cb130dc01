--[[
  Takes back what claimUnits-4 counted for a claim that SQL did not commit: the user's count and,
  when asked, the unit (back into the block it came from, if that block is still the same lease).
  KEYS[1] marker: when missing, the state was lost and is rebuilt from SQL: nothing to undo
  KEYS[2] users: hash user id -> claims counted
  KEYS[3] lease: hash {fence, left}
  ARGV[1] user id, or '' to leave the count alone
  ARGV[2] the lease's fence
  ARGV[3] units to put back (0 or 1)
  Returns:
    0   undone
    -3  the marker is missing (nothing undone)
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
if ARGV[1] ~= '' then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
end
if tonumber(ARGV[3]) > 0 and redis.call('HGET', KEYS[3], 'fence') == ARGV[2] then
  redis.call('HINCRBY', KEYS[3], 'left', tonumber(ARGV[3]))
end
return 0
