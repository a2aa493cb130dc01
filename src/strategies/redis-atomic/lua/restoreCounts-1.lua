--[[
  Puts users' committed claim counts (read from SQL) back into the campaign's users hash after
  Redis lost it, never lowering a count already there: a count set since (by a claim counted
  after another instance finished its own rebuild) includes claims SQL may not have yet.
  KEYS[1] users: hash user id -> claims counted
  ARGV    user id, total, user id, total, ...
  Returns the number of counts raised.
]]
local raised = 0
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if current < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    raised = raised + 1
  end
end
return raised
