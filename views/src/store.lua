-- Writes a room's view fields if the version check passes, atomically.
-- KEYS: 1 view hash, 2 lobby zset, 3 applied-seq watermark, 4 epoch marker, 5 recently closed
--       zset, 6 recently closed entries hash
-- ARGV: 1 mode ("exact": current must be version-1; "newer": current must be below version),
--       2 version, 3 seq, 4 fold, 5 view, 6 lobby json ("" = not in lobby), 7 room id, 8 updated_ms,
--       9 ms the view may stay once written (0: no limit; closed rooms' views leave Redis),
--       10 the room's card (its entry in "your rooms"), 11 the accounts that visited, "<id>:<ms>"
--       space-separated: each account's list chanshare:account:<id>:rooms gets the room at the time
--       of its visit (newest 200 kept), 12 the room's entry among the recently closed rooms ("" =
--       not there: open, unlisted or not rewatchable), 13 how many of those are kept (the newest),
--       14 its score there (when it closed)
-- Returns {written (0/1), current version before the call, reason}
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {0, 0, 'no_epoch'}
end
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  return {0, 0, 'parked'}
end
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[2])
if ARGV[1] == 'exact' then
  if current ~= version - 1 then return {0, current, 'version'} end
elseif current >= version then
  return {0, current, 'version'}
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'seq', ARGV[3], 'fold', ARGV[4], 'view', ARGV[5],
  'lobby', ARGV[6], 'card', ARGV[10])
for account, at_ms in string.gmatch(ARGV[11], '(%x+):(%d+)') do
  local list = 'chanshare:account:' .. account .. ':rooms'
  redis.call('ZADD', list, at_ms, ARGV[7])
  redis.call('ZREMRANGEBYRANK', list, 0, -201)
end
-- Views written before fold format 3 carried fields nothing read.
redis.call('HDEL', KEYS[1], 'members', 'chat')
if tonumber(ARGV[9]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[2], ARGV[7])
else
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7])
end
if ARGV[12] == '' then
  redis.call('ZREM', KEYS[5], ARGV[7])
  redis.call('HDEL', KEYS[6], ARGV[7])
else
  redis.call('ZADD', KEYS[5], ARGV[14], ARGV[7])
  redis.call('HSET', KEYS[6], ARGV[7], ARGV[12])
  local beyond = -1 - tonumber(ARGV[13])
  local old = redis.call('ZRANGE', KEYS[5], 0, beyond)
  if #old > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, beyond)
    redis.call('HDEL', KEYS[6], unpack(old))
  end
end
local applied = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[3]) > applied then
  redis.call('SET', KEYS[3], ARGV[3])
end
return {1, current, 'ok'}
