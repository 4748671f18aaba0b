package cache

import "github.com/redis/go-redis/v9"

// The epoch a script returns is the epoch key's value: random when the key is created, and
// replaced by the probe when Redis's run_id changes (a restart — even one that reloaded a
// snapshot, counters and all — is another epoch). Values of different epochs never make the
// same cache key (see epochShift).

// epochLua starts both scripts: e is the epoch key's value (KEYS[1]), set to ARGV[1] when
// missing.
const epochLua = `local e = redis.call('GET', KEYS[1])
if not e then
  redis.call('SET', KEYS[1], ARGV[1])
  e = ARGV[1]
end
`

// fetchScript reads generations, creating missing ones.
//
//	KEYS[1]      the epoch key; KEYS[2..] generation keys
//	ARGV[1]      a random epoch, set when the epoch key is missing
//	ARGV[i]      (i >= 2) a random start value for KEYS[i], used when it is missing
//
// It returns {epoch, v, g, l, v, g, l, ...}, all strings. Counters are returned as Redis
// stores them (strings), never through Lua numbers, which are doubles.
var fetchScript = redis.NewScript(epochLua + `local out = {e}
for i = 2, #KEYS do
  local r = redis.call('HMGET', KEYS[i], 'v', 'g', 'l')
  if not r[1] then
    redis.call('HSET', KEYS[i], 'v', ARGV[i], 'g', '', 'l', '` + zeroLSNField + `')
    r = {ARGV[i], '', '` + zeroLSNField + `'}
  end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2] or ''
  out[#out + 1] = r[3] or '` + zeroLSNField + `'
end
return out
`)

// bumpScript advances generations, records who bumped them, and publishes their keys.
//
//	KEYS[1]      the epoch key; KEYS[2..] generation keys (no duplicates)
//	ARGV[1]      a random epoch, set when the epoch key is missing
//	ARGV[2]      the pub/sub channel
//	ARGV[3]      the publishing cache's id, the message's first line
//	ARGV[3i+1..3i+3] for KEYS[i+1] (i >= 1): a random start value (used when the key is
//	             missing), the bumping group, its LSN (16 hex digits; all zero: unknown)
//
// A group prefixed with '?' makes that key's bump conditional: it is skipped when the key
// already records that group at that LSN or later (the proxy bumped past the commit).
//
// The group and LSN recorded follow mergeBump: a flush (group "") keeps the old ones; an
// unknown LSN counts as the largest; the same group keeps the larger (fixed-width hex
// compares like the number); another group replaces them. It returns {epoch, v, g, l, ...}
// as fetchScript does.
var bumpScript = redis.NewScript(epochLua + `
local zero = '` + zeroLSNField + `'
local out = {e}
local bumped = {}
for i = 2, #KEYS do
  local k = KEYS[i]
  local a = 3 * (i - 1) + 1
  local seed, grp, lsn = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local cond = string.sub(grp, 1, 1) == '?'
  if cond then
    grp = string.sub(grp, 2)
  end
  if redis.call('EXISTS', k) == 0 then
    redis.call('HSET', k, 'v', seed, 'g', '', 'l', zero)
  end
  local old = redis.call('HMGET', k, 'g', 'l')
  local skip = cond and lsn ~= zero and old[1] == grp and old[2] and old[2] >= lsn
  if not skip then
    redis.call('HINCRBY', k, 'v', 1)
    bumped[#bumped + 1] = k
  end
  local g, l = grp, lsn
  if skip then
    g, l = old[1], old[2]
  elseif grp == '' then
    g, l = old[1] or '', old[2] or zero
  else
    if l == zero then
      l = 'ffffffffffffffff'
    end
    if old[1] == grp and old[2] and old[2] > l then
      l = old[2]
    end
    redis.call('HSET', k, 'g', g, 'l', l)
  end
  out[#out + 1] = redis.call('HGET', k, 'v')
  out[#out + 1] = g
  out[#out + 1] = l
end
if #bumped > 0 then
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\n' .. table.concat(bumped, '\n'))
end
return out
`)
