"""The Lua scripts of the Redis watch: each runs atomically in Redis, one call per operation."""

from __future__ import annotations

from typing import Final

from .._conn import NOW_LUA as _NOW

#: KEYS: workers, orphans. ARGV: worker, ttl_ms. Returns {the live workers (this one
#: included), ms until the soonest other worker's heartbeat ends (-1: no other),
#: {account, ms left, ...} of the orphans (the first 1,000)}.
HEARTBEAT: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
local soonest = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 1, 'WITHSCORES')
for i = 1, #first, 2 do
  if first[i] ~= ARGV[1] then soonest = tonumber(first[i + 1]) - now; break end
end
local orphans = {}
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local left = redis.call('ZRANGE', KEYS[2], 0, 999, 'WITHSCORES')
  for i = 1, #left, 2 do
    orphans[#orphans + 1] = left[i]
    orphans[#orphans + 1] = tonumber(left[i + 1]) - now
  end
end
return {redis.call('ZRANGE', KEYS[1], 0, -1), soonest, orphans}
"""
)

#: KEYS: orphans. ARGV: account, ms. The account is an orphan for ms more.
ORPHAN: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""
)

#: KEYS: workers. ARGV: worker.
LEAVE: Final = "return redis.call('ZREM', KEYS[1], ARGV[1])"

#: KEYS: lease, fence, state. ARGV: worker, lease_ms, state_ttl_ms.
#: Returns {token, state or false, seq, 0, how, previous or false} when the lease is now
#: the worker's, or {0, false, 0, pttl, '', false} when another worker holds it for pttl
#: more ms. ``how``: 'free', 'own' (the lease was this worker's already: a claim whose
#: reply was lost, or a claim again), 'takeover' (``previous`` held it and its lease
#: lapsed) or 'adopted' (``previous`` gave it up because its polls failed). A lease this
#: worker already held gets a new token too: writes still on their way from its earlier
#: watch of the account are refused.
CLAIM: Final = """
local current = redis.call('GET', KEYS[1])
local how = 'free'
if current then
  local space = string.find(current, ' ', 1, true)
  if not space or string.sub(current, 1, space - 1) ~= ARGV[1] then
    return {0, false, 0, redis.call('PTTL', KEYS[1]), '', false}
  end
  how = 'own'
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
local saved = redis.call('HMGET', KEYS[3], 'state', 'seq', 'holder', 'stalled')
local previous = false
if how == 'free' and saved[3] and saved[3] ~= ARGV[1] then
  previous = saved[3]
  if saved[4] then how = 'adopted' else how = 'takeover' end
end
redis.call('HSET', KEYS[3], 'holder', ARGV[1])
redis.call('HDEL', KEYS[3], 'stalled')
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]))
return {token, saved[1] or false, tonumber(saved[2] or '0'), 0, how, previous}
"""

#: KEYS: lease. ARGV: worker, token, lease_ms. 1 if renewed, 0 if the lease is gone.
RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 0
"""

#: KEYS: lease, state. ARGV: worker, token, stalled ('1': given up because its polls
#: failed), state_ttl_ms. Deletes the lease only if it is still this one; the next claim
#: then says 'free' (or 'adopted' after a give-up) rather than 'takeover'.
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' then
    redis.call('HSET', KEYS[2], 'stalled', '1')
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
  else
    redis.call('HDEL', KEYS[2], 'holder', 'stalled')
  end
  return 1
end
return 0
"""

#: KEYS: lease, fence, state, stream. ARGV: worker, token, seq (the last write this
#: worker saw), state, state_ttl_ms, trim ('', 'MAXLEN' or 'MINID'), trim_arg
#: (entries, or max age in ms), stream_ttl_ms (0: none), log... .
#: Returns {1, seq} when written, {2, seq} when this very write was applied before (a
#: retry after a lost reply), {0, reason} when refused. ``#!lua`` makes Redis check
#: memory before the script runs, so a write is all or nothing.
COMMIT: Final = (
    "#!lua\n"
    + _NOW
    + """
local holder = ARGV[1] .. ' ' .. ARGV[2]
if redis.call('GET', KEYS[2]) ~= ARGV[2] or redis.call('GET', KEYS[1]) ~= holder then
  redis.call('HINCRBY', KEYS[3], 'refused', 1)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
  return {0, 'fence'}
end
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local expected = tonumber(ARGV[3])
local last = redis.call('HMGET', KEYS[3], 'token', 'state')
if seq == expected + 1 and last[1] == ARGV[2] and last[2] == ARGV[4] then
  return {2, seq}
end
if seq ~= expected then return {0, 'seq'} end
local kind = redis.call('TYPE', KEYS[4])['ok']
if kind ~= 'stream' and kind ~= 'none' then return {0, 'type'} end
local trim = ARGV[6]
local minid = tostring(now - tonumber(ARGV[7])) .. '-0'
for i = 9, #ARGV do
  if trim == 'MAXLEN' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'log', ARGV[i])
  elseif trim == 'MINID' then
    redis.call('XADD', KEYS[4], 'MINID', '~', minid, '*', 'log', ARGV[i])
  else
    redis.call('XADD', KEYS[4], '*', 'log', ARGV[i])
  end
end
if #ARGV >= 9 and tonumber(ARGV[8]) > 0 then
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]))
end
redis.call('HSET', KEYS[3], 'state', ARGV[4], 'seq', expected + 1, 'token', ARGV[2], 'at', now)
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
return {1, expected + 1}
"""
)

#: Every script, by the name the store calls it with.
SCRIPTS: Final = {
    "heartbeat": HEARTBEAT,
    "orphan": ORPHAN,
    "leave": LEAVE,
    "claim": CLAIM,
    "renew": RENEW,
    "release": RELEASE,
    "commit": COMMIT,
}
